"""Policy cases through the real path: caseload + packed partner feeds + policy overlay → flags.

A case (tests/policy/cases/*.yaml, the ``flag`` expectations) is turned into what a bureau and its
partners really hand in: one caseload row per member (schemas/batch.json) and, per partner, the
feed rows its contract names (schemas/feeds/*.json), each feed packed, signed and encrypted as the
partner would (connectors/envelope.py) and pulled over HTTP from the reference partner server.
The caseload is loaded, the feeds taken in, matched, assessed and flagged by the same functions a
review run calls (verification/pipeline.py), under the case's policy overlay (``policy_dir``).
Nothing here calls ``assess()`` or ``decide_flags()`` itself.

Cases that share a date and an overlay run as one district, one household per case.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from schemas import contract_for, feed_kinds, field_names


@dataclass(frozen=True)
class _Carrier:
    """A feed that delivers an evidence item, and the contract's evidence mapping that yields it
    (schemas/feeds/<kind>.json, ``x-hedui.evidence``)."""

    kind: str
    mapping: dict[str, Any]


@cache
def item_carriers() -> dict[str, tuple[_Carrier, ...]]:
    """Evidence item → the feeds whose contract yields it: a fixed ``item``, or each value of
    the ``item_field``'s enum. Read from the contracts, so a new feed needs no change here."""
    found: dict[str, list[_Carrier]] = {}
    for kind in feed_kinds():
        contract = contract_for(kind)
        for mapping in contract.evidence:
            items = ([mapping["item"]] if "item" in mapping else
                     contract.field(mapping["item_field"])["constraints"]["enum"])
            for item in items:
                found.setdefault(item, []).append(_Carrier(kind, dict(mapping)))
    return {item: tuple(carriers) for item, carriers in found.items()}


def carrier_for(item: dict[str, Any]) -> _Carrier:
    """The feed that carries a case's evidence item: the one its ``source`` names, the only
    one, or — where several do (a death: 殡葬 and 户籍) — the feed that yields it from every
    row (no ``where`` condition)."""
    carriers = item_carriers().get(item["item"], ())
    if item.get("source"):
        carriers = tuple(c for c in carriers if c.kind == item["source"])
    elif len(carriers) > 1:
        carriers = tuple(c for c in carriers if "where" not in c.mapping)
    if len(carriers) != 1:
        raise CaseError(f"evidence item {item['item']!r} (source {item.get('source')!r}) has "
                        "no single partner feed to carry it; name its source")
    return carriers[0]


# Required contract fields a case never decides, as a partner would fill them in.
_FILLER = {
    "employer_name": "沈阳某某有限公司", "business_name": "某某便利店", "institution": "盛京银行",
    "unit_name": "沈阳市某某局", "school_name": "沈阳市第某中学", "school_type": "public",
    "stage": "senior", "payment_name": "优待金", "payer": "沈阳市浑南区财政局",
}
# Item keys that are no contract field: what the runner reads itself.
_CASE_ITEM_KEYS = {"member", "item", "source", "amount", "months", "months_ago", "match", "name",
                   "date", "contribution", "area"}
RELATIONS = ("户主", "配偶", "子女", "父母", "孙子女", "兄弟姐妹", "其他")
_AREAS = ("210112", "210102", "210103", "210104", "210105", "210106", "210111", "210113")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红玲"


class CaseError(ValueError):
    """A case asks for something the real path cannot carry (an item no partner delivers)."""


@dataclass
class CaseOutcome:
    """What the run decided for one case's household."""

    flag: str
    codes: set[str]
    due_date: dt.date | None
    decision: str
    category: str
    benefit: float | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # the assessment's other measures


@dataclass
class _Person:
    id_number: str
    name: str
    born: dt.date


def run_cases(cases: list[dict[str, Any]], policy_root: Path | None = None,
              work: Path | None = None) -> list[CaseOutcome]:
    """Run every case through the real path; outcomes in the order of ``cases``.

    ``policy_dir`` in a case names its overlay folder, relative to ``policy_root``."""
    outcomes: dict[int, CaseOutcome] = {}
    # Feeds are a district's, not a household's: cases with missing or stale sources, another
    # date, overlay or batch each get a district of their own.
    groups: dict[tuple, list[int]] = {}
    for index, case in enumerate(cases):
        key = (case["date"], case.get("policy_dir") or "", case.get("batch_category") or "",
               tuple(sorted((case.get("sources") or {}).items())))
        groups.setdefault(key, []).append(index)
    with tempfile.TemporaryDirectory(prefix="hedui-cases-", dir=work) as scratch:
        for number, ((on, overlay, batch, _), indices) in enumerate(sorted(groups.items())):
            folder = (policy_root / overlay) if overlay and policy_root else (
                Path(overlay) if overlay else None)
            got = _run_district([cases[i] for i in indices], on, folder,
                                Path(scratch) / f"district-{number}", batch)
            outcomes.update(zip(indices, got, strict=True))
    return [outcomes[i] for i in range(len(cases))]


# ---- one district ------------------------------------------------------------------------------
def _run_district(cases: list[dict[str, Any]], on: dt.date, overlay: Path | None,
                  folder: Path, batch_category: str = "") -> list[CaseOutcome]:
    """One district: the caseload loaded and reviewed (``hedui run``), or — with
    ``batch_category`` — the file checked as a batch of applications for that category
    (``hedui batch submit --local``)."""
    from verification.config import Settings, load_settings
    from verification.storage import upgrade

    base = load_settings(folder / "home")
    url = f"sqlite:///{folder / 'home' / 'hedui.db'}"
    (folder / "home").mkdir(parents=True, exist_ok=True)
    upgrade(url)
    settings = Settings(home=base.home, database_url=url, token_key=base.token_key,
                        token_key_id=base.token_key_id)
    builder = _District(on)
    codes = [builder.add(case, n) for n, case in enumerate(cases, start=1)]
    builder.write(folder / "district")
    with _policy_overlay(overlay):
        _deliver(settings, folder / "district", builder)
        run_id = _review(settings, folder / "district" / "roster.csv", on, batch_category)
    found = _outcomes(settings, run_id)
    from verification.storage.db import dispose

    dispose(url)
    return [found[code] for code in codes]


def _review(settings: Any, caseload: Path, on: dt.date, batch_category: str) -> int:
    from verification import pipeline
    from verification.batches.check import run_batch_locally
    from verification.intake.roster import load_roster

    if batch_category:
        return int(run_batch_locally(settings, caseload, category=batch_category,
                                     requester="cases", as_of=on)["run_id"])
    load_roster(settings, caseload, actor="cases")
    run_id = pipeline.start_review(settings, "cases", on)
    plan = pipeline.prepare_evidence(settings, run_id)
    dirs = [pipeline.review_shard(settings, run_id, shard) for shard in plan.shards]
    pipeline.finish_review(settings, run_id, dirs)
    return run_id


@contextmanager
def _policy_overlay(folder: Path | None) -> Iterable[None]:
    from verification.assessment.policy import OVERLAY_ENV

    before = os.environ.get(OVERLAY_ENV)
    if folder is not None:
        os.environ[OVERLAY_ENV] = str(folder.resolve())
    else:
        os.environ.pop(OVERLAY_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OVERLAY_ENV, None)
        else:
            os.environ[OVERLAY_ENV] = before


class _District:
    """Caseload rows and feed rows of the cases, as the bureau and the partners write them."""

    def __init__(self, on: dt.date) -> None:
        self.on = on
        self.roster: list[dict[str, str]] = []
        from connectors.registry import delivered_kinds

        # every feed a registered partner delivers, empty where the cases have no record of it:
        # an undelivered feed would be a missing source for every household
        self.feeds: dict[str, list[dict[str, str]]] = {
            kind: [] for kind in {*feed_kinds(), *delivered_kinds()}}
        self.stale: set[str] = set()
        self.missing: set[str] = set()
        self.sequence = 0

    def add(self, case: dict[str, Any], number: int) -> str:
        code = f"CASE{number:04d}"
        region = str(case.get("region", "210112"))
        people = {}
        for index, member in enumerate(case["members"]):
            person = self._person(member)
            people[member["name"]] = person
            self.roster.append(self._row(case, code, region, member, person, index))
        for index, item in enumerate(case.get("evidence", [])):
            self._evidence(item, people[item["member"]], f"{code}-{index + 1}")
        for kind, state in (case.get("sources") or {}).items():
            {"missing": self.missing, "stale": self.stale}[state].add(kind)
        return code

    def _person(self, member: dict[str, Any]) -> _Person:
        from verification.intake.identifiers import make_id

        self.sequence += 1
        born = member.get("birth_date") or _birth_for_age(int(member["age"]), self.on)
        gender = member.get("gender", "F")
        sequence = self.sequence * 2 + (1 if gender == "M" else 0)
        name = (_SURNAMES[self.sequence % len(_SURNAMES)]
                + _GIVEN[(self.sequence * 7) % len(_GIVEN)] + _GIVEN[self.sequence % len(_GIVEN)])
        # another Shenyang district's area code after every 500 persons: more than 500 cases'
        # members of one age (one birth date) otherwise shared an ID number
        area = _AREAS[(sequence // 1000) % len(_AREAS)]
        return _Person(make_id(area, born, sequence % 1000), name, born)

    def _row(self, case: dict[str, Any], code: str, region: str, member: dict[str, Any],
             person: _Person, index: int) -> dict[str, str]:
        disability = member.get("disability") or {}
        relation = member.get("relation") or (member["name"] if member["name"] in RELATIONS
                                              else "其他")
        benefit = case.get("current_benefit")
        return {
            "household_code": code, "area_code": region, "street_code": region + "001",
            "community_code": region + "001001", "status": case.get("status", "applicant"),
            "category": case.get("category", "none"),
            "urban_rural": case.get("urban_rural", "urban"),
            "current_benefit": "" if benefit is None else f"{float(benefit):.2f}",
            "id_number": person.id_number, "name": person.name, "relation": relation,
            "exclusion": member.get("exclusion", ""),
            "disability_grade": str(disability.get("grade", "")) if disability else "",
            "disability_type": disability.get("type", ""),
            "authorisation_ref": f"SQ-{code}-{index + 1}",
            "authorisation_signed_on": (self.on - dt.timedelta(days=200)).isoformat(),
        }

    def _evidence(self, item: dict[str, Any], person: _Person, ref: str) -> None:
        """The rows of the item's feed, in its contract's fields: one a month where the
        mapping reads a ``period``, else one row."""
        carrier = carrier_for(item)
        contract, mapping = contract_for(carrier.kind), carrier.mapping
        id_number = person.id_number
        if item.get("match", "certain") != "certain":  # a mistyped check character
            id_number = id_number[:17] + ("0" if id_number[17] != "0" else "1")
        row = {"id_number": id_number, "name": item.get("name", person.name)}
        row.update(self._required(contract, ref))
        row.update(mapping.get("where", {}))
        if "item_field" in mapping:
            row[mapping["item_field"]] = item["item"]
        for other in contract.evidence:  # the other amounts a row of this feed has (wages)
            if other != mapping and "amount" in other and "item" in other:
                row[other["amount"]] = self._other_amount(contract, other, item)
        if "amount" in mapping:
            row[mapping["amount"]] = _number(contract, mapping["amount"], item.get("amount", 0))
        if "date" in mapping:
            row[mapping["date"]] = str(self._date(item, mapping["date"]))
        row.update({k: str(v) for k, v in item.items() if k not in _CASE_ITEM_KEYS})
        if "area" in item:
            row["area_m2"] = str(item["area"])
        unknown = set(row) - set(contract.field_names)
        if unknown:
            raise CaseError(f"{carrier.kind} has no fields {sorted(unknown)} (item {item['item']})")
        if "period" not in mapping:
            self.feeds[carrier.kind].append({**row, "record_id": ref})
            return
        for n, month in enumerate(self._months(item)):
            self.feeds[carrier.kind].append(
                {**row, "record_id": f"{ref}-{n + 1}", mapping["period"]: month})

    def _required(self, contract: Any, ref: str) -> dict[str, str]:
        """The required fields no evidence mapping fills, as the partner writes them."""
        values = {"certificate_no": f"辽(2020)沈阳市第{ref}号", "plate_no": f"辽A{ref[-5:]}",
                  "credit_code": _credit_code(self.sequence), "hukou_no": f"2101{ref[-6:]}",
                  "share": "1", "area_m2": "60", **_FILLER}
        return {name: values[name] for name in contract.field_names if name in values}

    @staticmethod
    def _other_amount(contract: Any, other: dict[str, Any], item: dict[str, Any]) -> str:
        """A wage row's contribution: ``contribution`` if the case gives it, else empty where
        the field is optional and 0 where it is required."""
        if "contribution" in item and other["amount"] == "si_contribution":
            return _number(contract, other["amount"], item["contribution"])
        required = contract.field(other["amount"]).get("constraints", {}).get("required")
        return _number(contract, other["amount"], 0) if required else ""

    def _date(self, item: dict[str, Any], field_name: str) -> dt.date:
        """The item's ``date``; else a balance is as of last month's end and a registration
        three years old."""
        if item.get("date"):
            return item["date"]
        if field_name == "as_of":
            return self._month_end()
        return self.on.replace(year=self.on.year - 3)

    def _months(self, item: dict[str, Any]) -> list[str]:
        """The ``months`` (default 12) full months before the case date's month, or from
        ``from``: as YYYY-MM, newest last."""
        count = int(item.get("months", 12))
        last = self.on.year * 12 + self.on.month - 2 - int(item.get("months_ago", 0))
        return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(last - count + 1, last + 1)]

    def _month_end(self) -> dt.date:
        return self.on.replace(day=1) - dt.timedelta(days=1)

    def period(self, kind: str) -> str:
        end = self._month_end()
        months = end.year * 12 + end.month - 1 - (14 if kind in self.stale else 0)
        return f"{months // 12}-{months % 12 + 1:02d}"

    def write(self, out: Path) -> None:
        (out / "feeds").mkdir(parents=True, exist_ok=True)
        _write_csv(out / "roster.csv", field_names("batch"), self.roster)
        for kind, rows in self.feeds.items():
            _write_csv(out / "feeds" / f"{kind}.csv", field_names(kind), rows)


def _number(contract: Any, field_name: str, value: Any) -> str:
    if contract.field(field_name)["type"] == "integer":
        return str(int(value))
    return f"{float(value):.2f}"


def _birth_for_age(age: int, on: dt.date) -> dt.date:
    try:
        return on.replace(year=on.year - age)
    except ValueError:  # 29 February
        return on.replace(year=on.year - age, day=28)


def _credit_code(seed: int) -> str:
    from verification.intake.identifiers import make_uscc

    return make_uscc(f"92210112MA{seed:07d}"[:17])


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


# ---- delivery: packed feeds over HTTP -----------------------------------------------------------
def _deliver(settings: Any, district: Path, builder: _District) -> None:
    """Each partner packs its feeds (signed, encrypted to the centre) and serves them; the
    centre pulls them as a scheduled partner DAG would. A missing source is not delivered."""
    from connectors import keys
    from connectors.http_pull import PartnerClient
    from connectors.partner_server import FeedCatalogue, PartnerServer
    from connectors.registry import load_partners
    from verification import pipeline
    from verification.synthetic.exchange import DEMO_TOKEN, _pack, ensure_test_keys, sequence_for

    centre = ensure_test_keys(settings).keyring.current.public()
    catalogue = FeedCatalogue()
    partners = load_partners()
    for code, spec in partners.items():
        signer = keys.insecure_test_signing_key(code)
        for kind in spec.feeds:
            if kind in builder.missing or kind not in builder.feeds:
                continue
            period = builder.period(kind)
            packed = settings.home / "partner-outbox" / code / f"{kind}-{period}.hedui"
            _pack(district / "feeds" / f"{kind}.csv", packed, code, kind, period, signer, centre)
            catalogue.add_file(code, kind, period, sequence_for(period), packed)
    server = PartnerServer(catalogue, tokens=dict.fromkeys(partners, DEMO_TOKEN)).start()
    try:
        for code in partners:
            client = PartnerClient(server.url_for(code), token=DEMO_TOKEN, retries=1,
                                   sleep=lambda _s: None)
            pipeline.pull_partner(settings, code, client)
    finally:
        server.stop()


# ---- read back ----------------------------------------------------------------------------------
def _outcomes(settings: Any, run_id: int) -> dict[str, CaseOutcome]:
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Assessment, Flag, FlagReason, Household

    found: dict[str, CaseOutcome] = {}
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Household.household_code, Flag.kind, Flag.due_date, Assessment.decision,
                   Assessment.category, Assessment.benefit, Flag.id, Assessment.details,
                   Assessment.household_size, Assessment.per_capita_income,
                   Assessment.financial_assets_per_capita)
            .join(Flag, Flag.household_id == Household.id)
            .join(Assessment, (Assessment.household_id == Household.id)
                  & (Assessment.run_id == run_id))
            .where(Flag.run_id == run_id)).all()
        for (code, kind, due, decision, category, benefit, flag_id, details, size,
             per_capita, assets_per_capita) in rows:
            # the measures kept in their own columns, beside the rest
            details = {**(details or {}), "household_size": size,
                       "per_capita_income": per_capita,
                       "financial_assets_per_capita": assets_per_capita}
            reasons = [{"code": r.code, **(r.detail or {})}
                       for r in session.scalars(select(FlagReason)
                                                .where(FlagReason.flag_id == flag_id))]
            found[code] = CaseOutcome(kind, {r["code"] for r in reasons}, due, decision,
                                      category, None if benefit is None else float(benefit),
                                      reasons, dict(details or {}))
    return found


# ---- expectations and the evaluation -----------------------------------------------------------
CASE_KEYS = {"name", "rule", "date", "region", "urban_rural", "status", "category",
             "batch_category", "current_benefit", "policy_dir", "members", "evidence", "sources",
             "expected"}
EXPECTED_KEYS = {"flag", "decision", "category", "benefit", "due_date", "reasons", "absent",
                 "results"}


def load_cases(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """(rule family, case) for every case in ``folder``/*.yaml; the family is the file name."""
    import yaml

    found = []
    for file in sorted(folder.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text(encoding="utf-8")):
            unknown = set(case) - CASE_KEYS | set(case.get("expected", {})) - EXPECTED_KEYS
            if unknown or not case.get("rule"):
                raise CaseError(f"{file.name}: {case.get('name')}: unknown keys {sorted(unknown)}"
                                " or no rule cited")
            found.append((file.stem, case))
    return found


def problems(case: dict[str, Any], outcome: CaseOutcome) -> list[str]:
    """What in the outcome differs from the case's expectation (empty: the case passes)."""
    expected, found = case["expected"], []
    for key, got in (("flag", outcome.flag), ("decision", outcome.decision),
                     ("category", outcome.category), ("due_date", outcome.due_date)):
        if key in expected and expected[key] != got:
            found.append(f"{key}: expected {expected[key]}, got {got}")
    if "benefit" in expected and (outcome.benefit is None
                                  or abs(outcome.benefit - float(expected["benefit"])) > 0.005):
        found.append(f"benefit: expected {expected['benefit']}, got {outcome.benefit}")
    for key, want in (expected.get("results") or {}).items():
        got = outcome.details.get(key)
        if isinstance(want, dt.date):  # a date in YAML: the assessment keeps ISO text
            want = want.isoformat()
        if got is None or (got != want if isinstance(want, str)
                           else abs(float(got) - float(want)) > 0.005):
            found.append(f"{key}: expected {want}, got {got}")
    missing = set(expected.get("reasons", [])) - outcome.codes
    if missing:
        found.append(f"reasons missing {sorted(missing)}; flag has {sorted(outcome.codes)}")
    present = set(expected.get("absent", [])) & outcome.codes
    if present:
        found.append(f"reasons present that must not be: {sorted(present)}")
    return found


def evaluate(folder: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Run every case of ``folder``; per family, each case's name and its problems."""
    cases = load_cases(folder)
    outcomes = run_cases([case for _, case in cases], policy_root=folder / "policies")
    results: dict[str, list[tuple[str, list[str]]]] = {}
    for (family, case), outcome in zip(cases, outcomes, strict=True):
        results.setdefault(family, []).append((case["name"], problems(case, outcome)))
    return results


def main(argv: list[str] | None = None) -> int:
    """``hedui policy eval [FOLDER]`` (``make eval-policy``): pass counts per rule family;
    exit 1 if any case fails."""
    import sys
    import warnings

    warnings.filterwarnings("ignore", message="Glyph")  # report charts without a CJK font
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path("tests/policy/cases/rules")
    results = evaluate(folder)
    total = passed = 0
    for family, rows in results.items():
        good = sum(1 for _, found in rows if not found)
        total, passed = total + len(rows), passed + good
        print(f"{family:<12} {good:>3} / {len(rows):<3} 通过 / passed")
        for name, found in rows:
            for problem in found:
                print(f"    ✗ {name}: {problem}")
    print(f"{'all':<12} {passed:>3} / {total:<3} 通过 / passed")
    return 0 if passed == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
