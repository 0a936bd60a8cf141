"""One reviewed synthetic district shared by the simulation and fairness tests: pulled from the
reference partner server and reviewed in-process, as `hedui pull` + `hedui run` do."""

import datetime as dt
from dataclasses import dataclass

import pytest

from tests.conftest import pulled_district, review_in_process
from verification.config import Settings

AS_OF = dt.date(2026, 11, 1)


@dataclass(frozen=True)
class Reviewed:
    settings: Settings
    run_id: int


@pytest.fixture(scope="session")
def reviewed(tmp_path_factory, district_dir) -> Reviewed:
    settings = pulled_district(tmp_path_factory.mktemp("analysis-home"), district_dir)
    return Reviewed(settings, review_in_process(settings, AS_OF, run_key="review-2026-11"))
