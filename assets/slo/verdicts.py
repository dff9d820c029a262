"""The SLO verdicts of one day: each names the day, the number, the threshold and the run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from assets.slo import measures
from assets.slo.config import SloConfig
from assets.slo.report import DayReport

SCHEDULE_TO_START = "training_schedule_to_start"
SUCCESS_RATIO = "success_ratio"
PRODUCTION_AGE = "production_model_age"
CHECK_DESCRIPTIONS = {
    SCHEDULE_TO_START: "The day's daily training run started within "
    "max_training_schedule_to_start_seconds (default 60 s) of its request.",
    SUCCESS_RATIO: "The daily runs' success ratio over the trailing success_window_days (7) is "
    "not below min_success_ratio (99 %) on breach_days (3) consecutive days.",
    PRODUCTION_AGE: "The model production served when the day's pipeline ended is at most "
    "max_production_age_days (2) days older than the day.",
}
PASSED, FAILED, WARN = "passed", "failed", "warn"


@dataclass(frozen=True)
class Verdict:
    check: str
    status: str  # passed | failed (page: ERROR) | warn (recorded, no page)
    observed: float | None
    threshold: float
    description: str
    run_id: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def schedule_to_start(report: DayReport, config: SloConfig) -> Verdict:
    limit = config.max_training_schedule_to_start_seconds
    if not report.training_waits:
        return Verdict(
            SCHEDULE_TO_START, PASSED, None, limit, f"{report.day}: no daily training run yet."
        )
    chain, wait = max(report.training_waits, key=lambda pair: pair[1])
    first = chain.first
    queued = measures.queue_wait(chain)
    queue_part = "" if queued is None else f"; {queued:.1f} s of it in the run queue"
    started = "started" if first.started_at is not None else "has not started"
    text = (
        f"{report.day}: daily_training_job run {first.run_id} {started} {wait:.1f} s after its "
        f"request ({first.request_source} at {_iso(first.requested_at)}){queue_part}; "
        f"threshold {limit:g} s."
    )
    status = PASSED if wait <= limit else FAILED
    return Verdict(SCHEDULE_TO_START, status, wait, limit, text, first.run_id)


def success_ratio(report: DayReport, config: SloConfig) -> Verdict:
    minimum = config.min_success_ratio
    ratio = report.success.ratio
    days = ", ".join(
        f"{r.day} {r.ratio:.3f} ({r.succeeded}/{r.finished})"
        if r.ratio is not None
        else f"{r.day} no finished runs"
        for r in report.ratios
    )
    failed = sorted({run for r in report.ratios for run in r.failed_run_ids})
    text = (
        f"{report.day}: success ratio over the trailing {config.success_window_days} days, "
        f"on each of the last {len(report.ratios)} days: {days}; a breach is all of them "
        f"below {minimum:g}. Failed runs: {', '.join(failed) or 'none'}."
    )
    breached = measures.below_for_consecutive_days(report.ratios, minimum)
    return Verdict(
        SUCCESS_RATIO,
        FAILED if breached else PASSED,
        ratio,
        minimum,
        text,
        failed[-1] if breached and failed else "",
    )


def production_age(report: DayReport, config: SloConfig) -> Verdict:
    limit = config.max_production_age_days
    at = _iso(report.as_of)
    if report.production_error:
        return Verdict(
            PRODUCTION_AGE,
            FAILED,
            None,
            limit,
            f"{report.day}: cannot read production's history: {report.production_error}",
        )
    production = report.production
    if production is None or production.version is None:
        # A new deployment has promoted nothing yet: recorded as a warning, not paged (the
        # success ratio pages when training keeps failing).
        return Verdict(
            PRODUCTION_AGE,
            WARN,
            None,
            limit,
            f"{report.day}: no production model at {at} (nothing promoted yet).",
        )
    age = production.age_days(report.day)
    text = (
        f"{report.day}: production was {production.version} (data day {production.day}, "
        f"promoted {production.moved_at}) at {at}: {age} day(s) older than the day; threshold "
        f"{limit} day(s)."
    )
    return Verdict(
        PRODUCTION_AGE, PASSED if age is not None and age <= limit else FAILED, age, limit, text
    )


def verdicts(report: DayReport, config: SloConfig) -> list[Verdict]:
    return [
        schedule_to_start(report, config),
        success_ratio(report, config),
        production_age(report, config),
    ]
