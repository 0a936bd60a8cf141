"""The narrow re-check equals the full review for the households it touches, and writes nothing
for the others: on a generated district, 1 % of the people get other wage records (amounts
changed, months added, records gone) in a new wages feed."""

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from connectors import envelope, keys
from tests.conftest import pull_everything, review_in_process
from verification.intake import feeds as intake
from verification.intake.roster import load_roster
from verification.recheck import NoBaseReview, recheck
from verification.storage import session_scope
from verification.storage.models import Flag, FlagReason, Household, Run
from verification.synthetic.exchange import ensure_test_keys, sequence_for

AS_OF = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    """200 households: 1 % of its people is a few persons, not a fraction of one."""
    from verification.synthetic.generator import generate, write_district

    folder = tmp_path_factory.mktemp("recheck-district")
    write_district(generate(200, seed=23), folder)
    return folder


def changed_wages(district, share: float = 0.01, seed: int = 5) -> tuple[pd.DataFrame, list]:
    """The wages feed with 1 % of the district's people changed, half of them drawn among those
    with wage records: of those, one in three loses them all and the others earn three times
    as much; those without start earning (a new month's record)."""
    wages = pd.read_csv(district / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    roster = pd.read_csv(district / "roster.csv", dtype=str, keep_default_na=False)
    people = roster.drop_duplicates("id_number")
    rng = np.random.default_rng(seed)
    count = math.ceil(share * len(people))
    paid = people["id_number"].isin(wages["id_number"]).to_numpy()
    chosen = pd.concat([group.iloc[rng.choice(len(group), n, replace=False)] for group, n in (
        (people[paid], count // 2), (people[~paid], count - count // 2))])
    earning = chosen[chosen["id_number"].isin(wages["id_number"])]["id_number"].tolist()
    gone, raised = earning[::3], [p for i, p in enumerate(earning) if i % 3]
    wages = wages[~wages["id_number"].isin(gone)].copy()
    up = wages["id_number"].isin(raised)
    wages.loc[up, "wage_amount"] = (wages.loc[up, "wage_amount"].astype(float) * 3 + 2000
                                    ).round(2).astype(str)
    template = wages.iloc[0]
    starting = chosen[~chosen["id_number"].isin(wages["id_number"]) &
                      ~chosen["id_number"].isin(gone)]
    added = pd.DataFrame([{**template.to_dict(), "record_id": f"WANEW{i:04d}",
                           "id_number": p.id_number, "name": p.name, "gender": "",
                           "birth_date": "", "period": "2026-10", "wage_amount": "6800.00",
                           "si_contribution": "700.00"} for i, p in enumerate(
                               starting.itertuples())])
    return pd.concat([wages, added], ignore_index=True), chosen["id_number"].tolist()


def deliver_wages(settings, district, frame: pd.DataFrame, bump: int) -> int:
    """Pack ``frame`` as the bureau would, under the next sequence, and take it in."""
    period = json.loads((district / "district.json").read_text("utf-8"))["period"]
    sequence = sequence_for(period) + bump
    plain = settings.home / f"wages-{sequence}.csv"
    frame.to_csv(plain, index=False)
    packed = settings.home / f"wages-{sequence}.hedui"
    manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period=period,
                                 sequence=sequence, row_count=len(frame), schema_version="1.0")
    centre = ensure_test_keys(settings)
    with plain.open("rb") as src, packed.open("wb") as dest:
        envelope.pack(src, dest, manifest=manifest, sender=keys.insecure_test_signing_key("hrss"),
                      recipient=centre.keyring.current.public())
    feed_id = intake.register_feed(settings, "hrss", "wages", period, sequence, packed)
    result = intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)
    assert result.status == "accepted", result.reason
    return feed_id


def _flags(settings, run_id: int) -> pd.DataFrame:
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Household.household_code, Flag.kind, Flag.evidence_digest,
                                      FlagReason.code)
                               .join(Flag, Flag.household_id == Household.id)
                               .join(FlagReason, FlagReason.flag_id == Flag.id, isouter=True)
                               .where(Flag.run_id == run_id)).all()
    frame = pd.DataFrame(rows, columns=["household_code", "kind", "digest", "code"])
    return frame.groupby(["household_code", "kind", "digest"])["code"].agg(
        lambda c: frozenset(c.dropna())).reset_index().set_index("household_code")


def _inbox(settings) -> dict[str, str]:
    """household code → the kind of run its flag in the inbox comes from (open flags)."""
    from verification.portal.views import FlagFilter, inbox_page
    from verification.security.access import principal

    page = inbox_page(settings, principal("hedui_staff"), FlagFilter(), AS_OF, page_size=10_000)
    codes = [f["household_code"] for f in page["flags"]]
    assert len(codes) == len(set(codes)) == page["total"]  # one current flag per household
    return {f["household_code"]: f["run_kind"] for f in page["flags"]}


def test_recheck_equals_the_full_review_and_writes_only_changed_outcomes(settings, district):
    assert {r.status for r in pull_everything(settings, district)} == {"accepted"}
    load_roster(settings, district / "roster.csv")
    with pytest.raises(NoBaseReview):
        recheck(settings, "wages", as_of=AS_OF)
    base = review_in_process(settings, AS_OF, run_key="base")
    assert recheck(settings, "wages", as_of=AS_OF).run_id is None  # nothing new yet

    frame, chosen = changed_wages(district)
    deliver_wages(settings, district, frame, bump=1)
    outcome = recheck(settings, "wages", as_of=AS_OF)
    diff = outcome.diffs["wages"]
    assert diff["persons_changed"] == len(chosen) >= 5
    assert diff["rows_added"] and diff["rows_removed"] and diff["rows_changed"]
    inbox = _inbox(settings)
    _replaced_flags_are_superseded(settings, base, outcome.run_id)
    full = review_in_process(settings, AS_OF, run_key="full-after")

    before, written, after = _flags(settings, base), _flags(settings, outcome.run_id), \
        _flags(settings, full)
    with session_scope(settings.database_url) as session:
        run = session.get(Run, outcome.run_id)
        assert run.kind == "recheck" and run.status == "done"
        assert run.households == outcome.households_rechecked
        assert run.feed_versions["wages"]["diff"]["persons_changed"] == len(chosen)
        touched = set(session.scalars(select(Household.household_code).where(
            Household.id.in_(session.scalars(select(Flag.household_id).where(
                Flag.run_id == outcome.run_id)).all()))).all())
    # written only for households re-assessed, and only where the outcome changed
    assert 0 < len(written) <= outcome.households_rechecked
    changed = after[(after["kind"] != before["kind"]) | (after["digest"] != before["digest"])]
    assert set(written.index) == set(changed.index) == touched
    # the re-check's flags are the full review's: kind, evidence digest and every reason code
    pd.testing.assert_frame_equal(written.sort_index(), after.loc[written.index].sort_index())
    # and the current outcome of every household (its re-check flag, else its review flag) too
    current = pd.concat([before.drop(index=written.index), written]).sort_index()
    pd.testing.assert_frame_equal(current, after.sort_index())
    # the officers' inbox shows each household's current flag: the re-check's where it wrote one
    acted = current[current["kind"] != "KEEP"]
    assert sorted(inbox) == sorted(acted.index)
    assert {code for code, run_kind in inbox.items() if run_kind == "recheck"} == set(
        written[written["kind"] != "KEEP"].index)


def _replaced_flags_are_superseded(settings, base: int, recheck_run: int) -> None:  # noqa: ANN001
    """The review's flags a re-check replaced are ``superseded``: counted as needing nothing
    more (the "done" filter's count is what its list shows) and refused to an officer."""
    from verification.flags.actions import FlagActionError, resolve_flag
    from verification.portal.views import FlagFilter, inbox_page
    from verification.security.access import principal

    with session_scope(settings.database_url) as session:
        rechecked = set(session.scalars(select(Flag.household_id)
                                        .where(Flag.run_id == recheck_run)).all())
        superseded = session.execute(select(Flag.id, Flag.household_id).where(
            Flag.run_id == base, Flag.status == "superseded")).all()
    assert rechecked and {household for _, household in superseded} == rechecked
    staff = principal("hedui_staff")
    done = inbox_page(settings, staff, FlagFilter(status="done"), AS_OF, page_size=10_000)
    assert done["total"] == len(done["flags"]) == done["counts"]["status"]["done"]
    with pytest.raises(FlagActionError, match="superseded"):
        resolve_flag(settings, principal("admin"), superseded[0][0], "confirmed")


def test_the_same_rows_again_re_assess_no_one(settings, district, monkeypatch):
    """Through `hedui recheck`: the feed re-sent in another order changes no one's evidence."""
    from typer.testing import CliRunner

    from verification.cli.recheck import app

    pull_everything(settings, district)
    load_roster(settings, district / "roster.csv")
    review_in_process(settings, AS_OF, run_key="base")
    wages = pd.read_csv(district / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    deliver_wages(settings, district, wages.iloc[::-1], bump=1)  # re-sent, in another order
    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    out = CliRunner().invoke(app, ["--as-of", AS_OF.isoformat(), "--no-reports"])
    assert out.exit_code == 0, out.output
    assert "wages: 变化人员 / persons changed 0" in out.output
    assert "households re-checked 0" in out.output
    with session_scope(settings.database_url) as session:
        (run,) = session.scalars(select(Run).where(Run.kind == "recheck")).all()
        assert run.households == 0 and run.counts == {}
        assert run.feed_versions["wages"]["diff"]["rows_new"] == len(wages)
    again = CliRunner().invoke(app, ["--as-of", AS_OF.isoformat()])
    assert again.exit_code == 0 and "nothing to re-check" in again.output
