"""The time from a bad promotion to its rollback, per day, from the registry's alias history:
day D reports the rollback of the model promoted for D-1, from its promotion move to the
rollback move; nothing when that model was not rolled back or when another day's was."""

import datetime as dt

import pytest

from assets.slo.report import DayReport
from assets.slo.rollback_time import rollback_of_previous_day
from resources.registry.registry import PRODUCTION, ModelRegistry
from resources.storage.object_store import LocalObjectStore
from tests.support.registry import record

DAY = "2026-11-06"


@pytest.fixture
def registry(tmp_path):
    models = ModelRegistry(LocalObjectStore(tmp_path / "store"), "ctr")
    models.register(record("good", day="2026-11-04"))
    models.register(record("bad", day="2026-11-05"))
    models.move_alias(PRODUCTION, "good", expected=None, why="first", run_id="promote-04")
    models.move_alias(PRODUCTION, "bad", expected="good", why="passed", run_id="promote-05")
    return models


def test_the_day_reports_how_long_the_day_befores_model_served(registry):
    assert rollback_of_previous_day(registry, DAY) is None  # not rolled back (yet)
    registry.rollback(PRODUCTION, expected="bad", why="next-day guard", run_id="guard-06")
    found = rollback_of_previous_day(registry, DAY)
    moves = registry.history(PRODUCTION)
    assert (found.version, found.restored, found.run_id) == ("bad", "good", "guard-06")
    promoted, rolled = (dt.datetime.fromisoformat(m.moved_at) for m in moves[1:3])
    assert found.seconds == pytest.approx((rolled - promoted).total_seconds())
    assert found.seconds >= 0
    # Another day's number does not count this rollback.
    assert rollback_of_previous_day(registry, "2026-11-07") is None
    assert rollback_of_previous_day(registry, "2026-11-05") is None


def test_the_number_is_part_of_the_days_report_numbers(registry):
    registry.rollback(PRODUCTION, expected="bad", why="next-day guard", run_id="guard-06")
    found = rollback_of_previous_day(registry, DAY)
    fields = {name: None for name in DayReport.__dataclass_fields__}
    report = DayReport(
        **{
            **fields,
            "day": DAY,
            "stages": {},
            "end_to_end": type("E2E", (), {"seconds": None})(),
            "ratios": [type("Ratio", (), {"ratio": None})()],
            "cost_usd": 0.0,
            "rollback": found,
        }
    )
    assert report.numbers()["bad_promotion_to_rollback_seconds"] == pytest.approx(found.seconds)
