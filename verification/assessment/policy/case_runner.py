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
from pathlib import Path
from typing import Any

from schemas import field_names

# the evidence items each partner feed delivers: item → feed kind
ITEM_KINDS = {
    "wage": "wages", "si_contribution": "wages",
    "enterprise_pension": "pensions", "basic_pension_residents": "pensions",
    "unemployment_benefit": "pensions", "old_age_allowance": "pensions",
    "home": "real_estate", "commercial_property": "real_estate",
    "car": "vehicles", "truck": "vehicles", "motorcycle": "vehicles", "e_bike": "vehicles",
    "disability_vehicle": "vehicles",
    "business": "business",
    "deposit": "deposits", "security": "deposits", "fund": "deposits",
    "commercial_insurance": "deposits", "internet_finance": "deposits",
    "death": "deaths",
}
RELATIONS = ("户主", "配偶", "子女", "父母", "孙子女", "兄弟姐妹", "其他")
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
            kind: [] for kind in {*ITEM_KINDS.values(), *delivered_kinds()}}
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
        return _Person(make_id("210112", born, sequence % 1000), name, born)

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
        name = item["item"]
        kind = ITEM_KINDS.get(name)
        if kind is None:
            raise CaseError(f"evidence item {name!r} has no partner feed to carry it yet")
        id_number = person.id_number
        if item.get("match", "certain") != "certain":  # a mistyped check character
            id_number = id_number[:17] + ("0" if id_number[17] != "0" else "1")
        who = {"id_number": id_number, "name": item.get("name", person.name)}
        amount = float(item.get("amount", 0))
        when = item.get("date") or self.on.replace(year=self.on.year - 3)
        if kind in ("wages", "pensions"):
            for n, month in enumerate(self._months(item)):
                row = {**who, "record_id": f"{ref}-{n + 1}", "period": month}
                if kind == "wages":
                    wage = amount if name == "wage" else 0.0
                    contribution = item.get("contribution", amount if name != "wage" else "")
                    row.update(employer_name="沈阳某某有限公司", employer_credit_code="",
                               wage_amount=f"{wage:.2f}",
                               si_contribution="" if contribution == "" else
                               f"{float(contribution):.2f}")
                else:
                    row.update(benefit_type=name, amount=f"{amount:.2f}")
                self.feeds[kind].append(row)
            return
        row = {**who, "record_id": ref}
        if kind == "real_estate":
            row.update(certificate_no=f"辽(2020)沈阳市不动产权第{ref}号", property_use=name,
                       area_m2=str(item.get("area", 60)), registered_on=str(when), share="1")
        elif kind == "vehicles":
            row.update(plate_no=f"辽A{ref[-5:]}", vehicle_type=name, registered_on=str(when),
                       status=item.get("status", "active"))
        elif kind == "business":
            row.update(credit_code=_credit_code(self.sequence), business_name="某某便利店",
                       registered_on=str(when), status=item.get("status", "active"))
        elif kind == "deposits":
            row.update(institution="盛京银行", account_type=name, balance=f"{amount:.2f}",
                       as_of=str(self._month_end()))
        elif kind == "deaths":
            row.update(date_of_death=str(item["date"]))
        self.feeds[kind].append(row)

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
                   Assessment.category, Assessment.benefit, Flag.id)
            .join(Flag, Flag.household_id == Household.id)
            .join(Assessment, (Assessment.household_id == Household.id)
                  & (Assessment.run_id == run_id))
            .where(Flag.run_id == run_id)).all()
        for code, kind, due, decision, category, benefit, flag_id in rows:
            reasons = [{"code": r.code, **(r.detail or {})}
                       for r in session.scalars(select(FlagReason)
                                                .where(FlagReason.flag_id == flag_id))]
            found[code] = CaseOutcome(kind, {r["code"] for r in reasons}, due, decision,
                                      category, None if benefit is None else float(benefit),
                                      reasons)
    return found


# ---- expectations and the evaluation -----------------------------------------------------------
CASE_KEYS = {"name", "rule", "date", "region", "urban_rural", "status", "category",
             "batch_category", "current_benefit", "policy_dir", "members", "evidence", "sources",
             "expected"}
EXPECTED_KEYS = {"flag", "decision", "category", "benefit", "due_date", "reasons", "absent"}


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
