"""One reviewed synthetic district shared by the simulation and fairness tests: pulled from the
reference partner server and reviewed in-process, as `hedui pull` + `hedui run` do."""

import datetime as dt
from dataclasses import dataclass

import pytest

from tests.conftest import pull_everything, review_in_process
from verification.config import Settings, load_settings

AS_OF = dt.date(2026, 11, 1)


@dataclass(frozen=True)
class Reviewed:
    settings: Settings
    run_id: int


@pytest.fixture(scope="session")
def reviewed(tmp_path_factory, district_dir) -> Reviewed:
    from verification.intake.roster import load_roster
    from verification.storage import upgrade

    home = tmp_path_factory.mktemp("analysis-home")
    base = load_settings(home)
    settings = Settings(home=base.home, database_url=f"sqlite:///{home / 'hedui.db'}",
                        token_key=base.token_key, token_key_id=base.token_key_id)
    upgrade(settings.database_url)
    pull_everything(settings, district_dir)
    load_roster(settings, district_dir / "roster.csv")
    return Reviewed(settings, review_in_process(settings, AS_OF, run_key="review-2026-11"))
