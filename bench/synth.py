"""A deterministic, vectorised synthetic caseload and partner feeds for the benchmark harness.

``build(households, seed)`` makes, with numpy and Arrow only (no per-row Python except for small
pools), a caseload of N households (≈ 2.55 persons each) and every partner feed (one per contract
in schemas/feeds/, as connectors/partners.yaml delivers them) as each partner would send them —
raw strings in the feed contracts' columns, with the usual dirt (full-width digits, lowercase x
with spaces, 15-digit legacy numbers, amounts written with separators or 元) and 0.1% rows that
must be quarantined (a wrong check character). At 1,000,000 households that is ≈ 2.55
million persons and ≈ 35 million feed records (≈ 22 million of them wages and pensions).
Same arguments, same bytes.

This is not the demo generator (``verification/synthetic/generator.py``, row by row, with a ground
truth per
household): it has no expected flags. The benchmark checks its results against an independent
DuckDB computation on the same data instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification import jurisdictions
from verification.intake.identifiers import USCC_ALPHABET, make_uscc

AREA_CODE = "210112"
AS_OF = dt.date(2026, 11, 1)
PERIOD = "2026-10"  # the feeds' period: the month before the as-of date
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田"
                "董袁潘于蒋蔡余杜叶程苏魏吕丁")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彩春菊凤洁梅琳素云莲")
HOUSEHOLD_SIZES = (np.array([1, 2, 3, 4, 5]), np.array([0.25, 0.30, 0.20, 0.15, 0.10]))
_MONTH0 = np.datetime64("1970-01", "M")
_DAYS_SPAN = 365 * 85  # birth dates over 85 years: with 1,000 sequence numbers per day, 31M IDs


@dataclass(frozen=True)
class Caseload:
    """Households (index 1..N = the ``households.id`` the benchmark database uses) and members."""

    households: pd.DataFrame
    members: pd.DataFrame  # household_id, id_number (canonical), name, birth_date, gender, relation


@dataclass(frozen=True)
class SynthData:
    caseload: Caseload
    feeds: dict[str, pa.Table]  # kind → raw string columns in contract order

    @property
    def records(self) -> int:
        return sum(t.num_rows for t in self.feeds.values())


# ---- identifiers and text, vectorised ------------------------------------------------------
_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = np.array(list("10X98765432"), dtype=object)


def _text(values: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Integers or numpy strings → an Arrow string array."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == pa.string() else pc.cast(array, pa.string())


def _join(*parts: object) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _padded(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_text(values), width, "0")


def _resident_ids(born: np.ndarray, sequence: np.ndarray) -> pa.Array:
    """GB 11643 numbers for area 210112, birth dates (datetime64[D]) and 3-digit sequences."""
    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (born - born.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    first17 = (int(AREA_CODE) * 10**11 + (year * 10000 + month * 100 + day) * 1000
               + sequence.astype(np.int64))
    total = np.zeros(len(first17), dtype=np.int64)
    rest = first17.copy()
    for weight in reversed(_WEIGHTS):
        total += (rest % 10) * weight
        rest //= 10
    return _join(_text(first17), pa.array(_CHECK[total % 11], pa.string()))


def _people(rng: np.random.Generator, count: int) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """``count`` distinct (ID, birth date, gender): each a distinct (birth day, sequence) slot."""
    slots = rng.choice(_DAYS_SPAN * 1000, size=count, replace=False)
    born = np.datetime64(AS_OF) - np.timedelta64(1, "D") - (slots // 1000).astype("timedelta64[D]")
    sequence = slots % 1000
    ids = _resident_ids(born, sequence)
    return ids, born, np.where(sequence % 2 == 1, "M", "F")


def _names(rng: np.random.Generator, count: int) -> pa.Array:
    surname = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), count)]
    given = np.array(GIVEN)[rng.integers(0, len(GIVEN), count)]
    second = np.where(rng.random(count) < 0.65, np.array(GIVEN)[rng.integers(0, len(GIVEN), count)],
                      "")
    return pc.binary_join_element_wise(surname, given, second, "")


# ---- caseload ------------------------------------------------------------------------------
def _caseload(rng: np.random.Generator, n: int) -> Caseload:
    streets = jurisdictions.streets()
    street_codes = np.array(sorted(streets))
    communities = {s: sorted(jurisdictions.communities(s)) for s in street_codes}
    ids = np.arange(1, n + 1, dtype=np.int64)
    street = street_codes[rng.integers(0, len(street_codes), n)]
    pick = rng.random(n)
    community = np.empty(n, dtype="U12")
    for code in street_codes:
        here = street == code
        options = np.array(communities[code])
        community[here] = options[(pick[here] * len(options)).astype(int)]
    status = rng.choice(np.array(["recipient", "applicant", "monitored"]), n, p=[0.6, 0.25, 0.15])
    sizes = rng.choice(HOUSEHOLD_SIZES[0], n, p=HOUSEHOLD_SIZES[1])
    households = pd.DataFrame({
        "household_code": _join("HB", _padded(ids, 9)).to_numpy(zero_copy_only=False),
        "area_code": AREA_CODE, "street_code": street, "community_code": community,
        "status": status, "category": np.where(status == "recipient", "dibao", "none"),
        "urban_rural": np.where(np.isin(street, ["210112005", "210112006"]), "rural", "urban"),
        "current_benefit": np.where(status == "recipient", 600.0 * sizes, 0.0),
    }, index=pd.Index(ids, name="household_id"))
    household_of = np.repeat(ids, sizes)
    rank = np.arange(len(household_of)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    id_numbers, born, gender = _people(rng, len(household_of))
    relation = np.where(rank == 0, "户主", np.where(rank == 1, "配偶", "子女"))
    members = pd.DataFrame({
        "household_id": household_of,
        "id_number": id_numbers.to_numpy(zero_copy_only=False),
        "name": _names(rng, len(household_of)).to_numpy(zero_copy_only=False),
        "birth_date": born, "gender": gender, "relation": relation,
    })
    return Caseload(households, members)


# ---- partner feeds -------------------------------------------------------------------------
def _months() -> np.ndarray:
    """The 12 months before the as-of month, as 'YYYY-MM'."""
    last = np.datetime64(AS_OF, "M") - 1
    return np.array([str(last - i) for i in range(12)])


def _dirty_ids(rng: np.random.Generator, ids: pa.Array) -> pa.Array:
    """As partners write them: 2% full-width, 2% lowercase with spaces, 1% legacy 15-digit."""
    roll = rng.random(len(ids))
    wide = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
    rules = [(roll < 0.02, lambda s: s.translate(wide)),
             ((roll >= 0.02) & (roll < 0.04), lambda s: f" {s.lower()} "),
             ((roll >= 0.04) & (roll < 0.05), lambda s: s[:6] + s[8:17] if s[6:8] == "19" else s)]
    for mask, rewrite in rules:
        chosen = ids.filter(pa.array(mask)).to_pylist()
        ids = pc.replace_with_mask(ids, pa.array(mask), pa.array([rewrite(v) for v in chosen],
                                                                 pa.string()))
    return ids


def _broken_ids(ids: pa.Array) -> pa.Array:
    """The same numbers with a wrong check character: must be quarantined."""
    first17 = pc.utf8_slice_codeunits(ids, 0, 17)
    wrong = pc.if_else(pc.ends_with(ids, "0"), "1", "0")
    return _join(first17, wrong)


def _money(rng: np.random.Generator, amounts: np.ndarray) -> pa.Array:
    """'1234.50', now and then '1,234.50' (5%) or '1234.50元' (3%)."""
    cents = np.round(amounts * 100).astype(np.int64)
    text = _join(_text(cents // 100), ".", _padded(cents % 100, 2))
    roll = rng.random(len(amounts))
    for mask, pattern in (((roll < 0.05), "{:,.2f}"), ((roll >= 0.05) & (roll < 0.08), "{:.2f}元")):
        chosen = cents[mask] / 100
        text = pc.replace_with_mask(text, pa.array(mask),
                                    pa.array([pattern.format(v) for v in chosen], pa.string()))
    return text


def _decimal(values: np.ndarray, places: int) -> pa.Array:
    scaled = np.round(values * 10**places).astype(np.int64)
    return _join(_text(scaled // 10**places), ".", _padded(scaled % 10**places, places))


def _record_ids(prefix: str, count: int) -> pa.Array:
    return _join(prefix, _padded(np.arange(1, count + 1), 10))


def _dates_before(rng: np.random.Generator, count: int, days: int) -> pa.Array:
    first = (np.datetime64(AS_OF, "M") - 1).astype("datetime64[D]")
    return pc.strftime(pa.array(first - rng.integers(1, days, count)), "%Y-%m-%d")


def _identity_columns(rng: np.random.Generator, ids: pa.Array,
                      born: np.ndarray) -> dict[str, pa.Array]:
    """Per person, the optional identity fields as partners send them: birth date and gender
    for 60% (as 男/女), a mobile number for 40%, no address (the generator in
    verification/generator.py writes addresses; nothing compares them yet). "" = not sent."""
    count = len(ids)
    sent = rng.random(count) < 0.6
    parity = pc.cast(pc.utf8_slice_codeunits(ids, 16, 17), pa.int64()).to_numpy() % 2
    gender = np.where(sent, np.where(parity == 1, "男", "女"), "")
    birth = np.where(sent, np.datetime_as_string(born, unit="D"), "")
    digits = np.char.zfill(rng.integers(0, 10**9, count).astype(str), 9)
    phone = np.where(rng.random(count) < 0.4, np.char.add("13", digits), "")
    return {"gender": pa.array(gender, pa.string()), "birth_date": pa.array(birth, pa.string()),
            "address": pa.array(np.full(count, "", dtype=object), pa.string()),
            "phone": pa.array(phone, pa.string())}


def _credit_codes(rng: np.random.Generator, count: int) -> pa.Array:
    alphabet = np.array(list(USCC_ALPHABET[:10] + "ABCDEFGH"))
    bodies = ["92210112" + "".join(row) for row in alphabet[rng.integers(0, 18, (count, 9))]]
    return pa.array([make_uscc(b) for b in bodies], pa.string())


def _persons_for_feeds(rng: np.random.Generator, caseload: Caseload):  # noqa: ANN202
    """Roster persons plus outsiders (5%: residents not in the caseload) and their attributes."""
    m = caseload.members
    outsiders = max(10, len(m) // 20)
    out_ids, out_born, _ = _people(rng, outsiders + len(m))
    fresh = ~pd.Index(out_ids.to_numpy(zero_copy_only=False)).isin(m["id_number"])
    out_ids = out_ids.filter(pa.array(fresh)).slice(0, outsiders)
    out_born = out_born[fresh][:outsiders]
    ids = pa.concat_arrays([pa.array(m["id_number"].to_numpy(), pa.string()), out_ids])
    born = np.concatenate([m["birth_date"].to_numpy().astype("datetime64[D]"), out_born])
    names = pa.concat_arrays([pa.array(m["name"].to_numpy(), pa.string()),
                              _names(rng, len(out_ids))])
    age = (np.datetime64(AS_OF) - born).astype(np.int64) // 365
    return ids, age, names, born


class _Feeds:
    """Builds each feed from the persons it concerns; ``rows`` adds the ID and name columns."""

    def __init__(self, rng: np.random.Generator, caseload: Caseload) -> None:
        self.rng = rng
        self.ids, self.age, self.names, born = _persons_for_feeds(rng, caseload)
        # their own generator: the rest of the data stays as it was without them
        self.identity = _identity_columns(np.random.default_rng([15, len(born)]), self.ids, born)
        self.poor = rng.random(len(self.ids)) < 0.45  # poor persons earn and own little
        self.adults = np.flatnonzero(self.age >= 18)

    def table(self, kind: str, who: np.ndarray, columns: dict[str, object]) -> pa.Table:
        rng = self.rng
        rows = len(who)
        junk = max(1, rows // 1000)  # 0.1% rows with a broken ID number: quarantined
        pick = rng.integers(0, len(self.ids), junk)
        same = rng.integers(0, max(rows, 1), junk)
        full = {"record_id": pa.concat_arrays([_record_ids(kind[:2].upper(), rows),
                                               _record_ids(kind[:2].upper() + "X", junk)]),
                "id_number": pa.concat_arrays([_text(_dirty_ids(rng, self.ids.take(who))),
                                               _broken_ids(self.ids.take(pick))]),
                "name": pa.concat_arrays([self.names.take(who), self.names.take(pick)])}
        persons = pa.array(np.concatenate([who, pick]).astype(np.int64))
        full |= {column: values.take(persons) for column, values in self.identity.items()}
        for key, values in columns.items():
            if isinstance(values, str):
                full[key] = pa.array(np.full(rows + junk, values, dtype=object), pa.string())
            else:
                values = _text(values)
                full[key] = pa.concat_arrays([values, values.take(same) if rows else
                                              pa.array(["0"] * junk, pa.string())])
        table = pa.table(full)
        return table.take(pa.array(rng.permutation(table.num_rows)))  # partners' own order

    def monthly(self, who: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """Each person 12 times, with the 12 months."""
        return np.repeat(who, 12), pa.array(np.tile(_months(), len(who)), pa.string())


def _feeds(rng: np.random.Generator, caseload: Caseload) -> dict[str, pa.Table]:
    f = _Feeds(rng, caseload)
    age, poor, adults, n = f.age, f.poor, f.adults, len(f.ids)
    feeds: dict[str, pa.Table] = {}

    workers = np.flatnonzero((age >= 18) & (age < 60) & (rng.random(n) < np.where(poor, 0.5, 0.75)))
    wage = np.where(poor[workers], rng.uniform(100, 600, len(workers)),
                    rng.gamma(3.0, 1500.0, len(workers)))
    who, months = f.monthly(workers)
    amount = np.repeat(wage, 12) * rng.uniform(0.95, 1.05, len(who))
    employers = _credit_codes(rng, 500)
    employer = np.repeat(rng.integers(0, 500, len(workers)), 12)
    feeds["wages"] = f.table("wages", who, {
        "period": months, "employer_name": _join("沈阳某某有限公司", _text(employer)),
        "employer_credit_code": employers.take(pa.array(employer)),
        "wage_amount": _money(rng, amount), "si_contribution": _decimal(amount * 0.105, 2)})

    retired = np.flatnonzero((age >= 60) & (rng.random(n) < 0.9))
    kind = np.where(poor[retired], "basic_pension_residents",
                    np.where(rng.random(len(retired)) < 0.1, "old_age_allowance",
                             "enterprise_pension"))
    monthly = np.where(kind == "enterprise_pension", rng.gamma(4.0, 700.0, len(retired)),
                       np.where(kind == "old_age_allowance", 100.0, 180.0))
    who, months = f.monthly(retired)
    feeds["pensions"] = f.table("pensions", who, {
        "period": months, "benefit_type": np.repeat(kind, 12),
        "amount": _money(rng, np.repeat(monthly, 12))})

    holders = adults[rng.random(len(adults)) < 0.55]
    balance = np.where(poor[holders], rng.uniform(0, 6000, len(holders)),
                       rng.gamma(1.5, 30000.0, len(holders)))
    feeds["deposits"] = f.table("deposits", holders, {
        "institution": "盛京银行",
        "account_type": rng.choice(np.array(["deposit", "security", "fund"]), len(holders),
                                   p=[0.85, 0.1, 0.05]),
        "account_id": "",  # not sent (optional): one balance per holder, nothing to tell apart
        "balance": _money(rng, balance), "as_of": str(np.datetime64(AS_OF, "M") - 1) + "-01"})

    owners = adults[rng.random(len(adults)) < np.where(poor[adults], 0.2, 0.45)]
    owners = np.concatenate([owners, owners[rng.random(len(owners)) < 0.12]])  # second homes
    feeds["real_estate"] = f.table("real_estate", owners, {
        "certificate_no": _join("辽(2024)沈阳市不动产权第", _text(np.arange(len(owners))), "号"),
        "property_use": np.where(rng.random(len(owners)) < 0.05, "commercial_property", "home"),
        "area_m2": _decimal(rng.uniform(40, 140, len(owners)), 1),
        "registered_on": _dates_before(rng, len(owners), 6000), "share": "1"})

    drivers = adults[rng.random(len(adults)) < np.where(poor[adults], 0.02, 0.15)]
    feeds["vehicles"] = f.table("vehicles", drivers, {
        "plate_no": _join("辽A", _padded(np.arange(len(drivers)), 6)),
        "vehicle_type": rng.choice(np.array(["car", "motorcycle", "e_bike", "disability_vehicle"]),
                                   len(drivers), p=[0.7, 0.1, 0.15, 0.05]),
        "registered_on": _dates_before(rng, len(drivers), 3000),
        "status": np.where(rng.random(len(drivers)) < 0.1, "deregistered", "active")})

    founders = adults[rng.random(len(adults)) < 0.03]
    feeds["business"] = f.table("business", founders, {
        "credit_code": _credit_codes(rng, len(founders)), "business_name": "沈阳市浑南区便利店",
        "registered_on": _dates_before(rng, len(founders), 2000),
        "status": np.where(rng.random(len(founders)) < 0.2, "cancelled", "active")})

    died = np.flatnonzero(rng.random(n) < 0.004)
    feeds["deaths"] = f.table("deaths", died,
                              {"date_of_death": _dates_before(rng, len(died), 60)})
    feeds.update(_other_feeds(f, workers, wage))
    return feeds


def _other_feeds(f: _Feeds, workers: np.ndarray, wage: np.ndarray) -> dict[str, pa.Table]:
    """The feeds of the other partners: tax, provident fund, public finance, marriages,
    healthcare, veterans, education, disability register, household registration."""
    rng, age, poor, adults, n = f.rng, f.age, f.poor, f.adults, len(f.ids)
    feeds: dict[str, pa.Table] = {}
    taxed = adults[rng.random(len(adults)) < np.where(poor[adults], 0.01, 0.06)]
    category = rng.choice(np.array(["rent", "interest", "dividend", "labour_remuneration",
                                    "business_income"]), len(taxed))
    who, months = f.monthly(taxed)
    taxable = np.repeat(rng.gamma(2.0, 800.0, len(taxed)), 12)
    feeds["tax"] = f.table("tax", who, {
        "period": months, "income_category": np.repeat(category, 12),
        "taxable_income": _money(rng, taxable), "tax_paid": _decimal(taxable * 0.02, 2)})

    funded = rng.random(len(workers)) < np.where(poor[workers], 0.05, 0.6)
    who, months = f.monthly(workers[funded])
    feeds["provident_fund"] = f.table("provident_fund", who, {
        "period": months, "employer_name": "沈阳某某有限公司",
        "employer_credit_code": _credit_codes(rng, 1).take(pa.array(np.zeros(len(who), int))),
        "contribution": _money(rng, np.repeat(wage[funded] * 0.12, 12))})

    staff = adults[rng.random(len(adults)) < np.where(poor[adults], 0.002, 0.03)]
    feeds["public_payroll"] = f.table("public_payroll", staff, {
        "unit_name": "浑南区某街道办事处", "since": _dates_before(rng, len(staff), 8000),
        "status": np.where(rng.random(len(staff)) < 0.15, "left", "active")})

    paid = np.flatnonzero(rng.random(n) < np.where(poor, 0.2, 0.03))
    payment = rng.choice(np.array(["assistance_payment", "scholarship", "family_planning_award",
                                   "bravery_award"]), len(paid), p=[0.7, 0.15, 0.14, 0.01])
    who, months = f.monthly(paid)
    feeds["subsidies"] = f.table("subsidies", who, {
        "period": months, "payment_type": np.repeat(payment, 12), "payer": "浑南区民政局",
        "amount": _money(rng, np.repeat(rng.uniform(80, 900, len(paid)), 12))})

    married = adults[rng.random(len(adults)) < 0.01]
    feeds["marriages"] = f.table("marriages", married, {
        "event": np.where(rng.random(len(married)) < 0.7, "marriage", "divorce"),
        "registered_on": _dates_before(rng, len(married), 3000)})

    ill = np.flatnonzero(rng.random(n) < np.where(age >= 50, 0.15, 0.04))
    who, months = f.monthly(ill)
    feeds["medical"] = f.table("medical", who, {
        "period": months, "institution": "沈阳市第四人民医院",
        "out_of_pocket": _money(rng, rng.gamma(1.2, 150.0, len(who)))})

    veterans = np.flatnonzero((age >= 40) & (rng.random(n) < 0.02))
    who, months = f.monthly(veterans)
    feeds["special_care"] = f.table("special_care", who, {
        "period": months, "payment_name": "定期抚恤金",
        "amount": _money(rng, np.repeat(rng.uniform(300, 3000, len(veterans)), 12))})

    pupils = np.flatnonzero((age >= 3) & (age < 22) & (rng.random(n) < 0.4))
    stage = np.select([age[pupils] < 6, age[pupils] < 12, age[pupils] < 15, age[pupils] < 18],
                      ["preschool", "primary", "junior", "senior"], "undergraduate")
    feeds["education"] = f.table("education", pupils, {
        "period": str(np.datetime64(AS_OF, "M") - 2), "school_name": "沈阳市浑南区某学校",
        "school_type": np.where(rng.random(len(pupils)) < 0.9, "public", "private"),
        "stage": stage, "tuition": _money(rng, rng.choice([800.0, 1200.0, 2400.0, 9000.0],
                                                          len(pupils)))})

    disabled = np.flatnonzero(rng.random(n) < 0.06)
    feeds["disability"] = f.table("disability", disabled, {
        "certificate_no": _join("2101122", _padded(np.arange(len(disabled)), 9)),
        "disability_type": rng.choice(np.array([
            "disability_visual", "disability_hearing", "disability_speech", "disability_limb",
            "disability_intellectual", "disability_mental", "disability_multiple"]),
            len(disabled)),
        "disability_grade": rng.integers(1, 5, len(disabled)),
        "issued_on": _dates_before(rng, len(disabled), 6000),
        "status": np.where(rng.random(len(disabled)) < 0.05, "cancelled", "valid")})

    changed = np.flatnonzero(rng.random(n) < 0.015)
    event = rng.choice(np.array(["birth", "move_in", "move_out", "death"]), len(changed),
                       p=[0.3, 0.3, 0.3, 0.1])
    feeds["population"] = f.table("population", changed, {
        "hukou_no": _padded(np.arange(len(changed)), 9), "event": event,
        "event_date": _dates_before(rng, len(changed), 3000),
        "other_name": "", "relation": ""})
    return feeds


def caseload(households: int, seed: int = 2026) -> Caseload:
    """Only the caseload of ``build(households, seed)`` (the same households and members)."""
    return _caseload(np.random.default_rng(seed), households)


def build(households: int, seed: int = 2026) -> SynthData:
    """The caseload and every feed for ``households`` households; deterministic by seed."""
    rng = np.random.default_rng(seed)
    caseload = _caseload(rng, households)
    return SynthData(caseload, _feeds(rng, caseload))
