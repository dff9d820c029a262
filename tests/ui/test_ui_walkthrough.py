"""Issue 13's acceptance, in a real browser: headless Chromium (Debian's package at
/usr/bin/chromium, never a downloaded one) driven by Playwright against the real webserver and
daemon on an embedded instance (`embedded_home`: the policy of deployments/local/dagster.yaml)
over a copy of the test warehouse. That warehouse holds the fixed seeded days of
tests/support/environment.py (2026-10-29 to 2026-11-06, so results never depend on today's
date), not `make dev`'s range from the partitions' start to yesterday.

A user materializes one day of daily_events from the asset's Materialize dialog, waits for the
run, reads that day's gate results on the Checks tab, finds that the deadline check the UI
added to the run judged that same day (and passed), and previews the completeness sensor's
tick. Each step leaves a screenshot under .artifacts/ui/ (names in the steps below):

    01_asset_page.png              daily_events' overview, before anything ran
    02_materialize_dialog.png      the Materialize dialog, nothing selected
    03_one_partition_selected.png  the dialog with only 2026-11-05 selected ("Launch 1 run")
    04_run_launched.png            the "Launched run <id>" toast
    05_run_succeeded.png           the run's page: Success, partition 2026-11-05
    06_checks_tab.png              the Checks tab: every gate of the asset, none failed
    07_gate_execution_history.png  the completeness gate's execution history, 2026-11-05's row
    08_gate_result_for_day.png     that row's metadata: partition, observed and threshold values
    09_deadline_check_for_day.png  daily_partition_landed's execution history: the run's
                                   evaluation of 2026-11-05 and its run-level result, Passed
    10_sensor_page.png             upstream_completeness_sensor's page
    11_sensor_tick_preview.png     "Preview tick result": the evaluation's result, not an error
"""

import re
import shutil
import time
from pathlib import Path

import pytest

from scripts.dagster_processes import DagsterProcesses, embedded_home
from tests.support.environment import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = REPO_ROOT / ".artifacts" / "ui"

ASSET = "daily_events"
DAY = "2026-11-05"  # a seeded day (tests/support/environment.py) whose gates all pass
GATE = "completeness"  # a numeric gate: hours of the day with events against the 24 required
DEADLINE_CHECK = "daily_partition_landed"  # added by the UI to a materialization of the asset
SENSOR = "upstream_completeness_sensor"

# The UI is a large single-page app and shares 2 cores with the webserver, daemon and run.
UI_TIMEOUT_MS = 90_000
RUN_TIMEOUT_S = 240


def _unavailable_reason() -> str | None:
    """Why the walk-through cannot run here, for the skip message; None when it can."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: the UI walk-through needs Debian's chromium package "
            "(`apt-get install chromium`, as .ci/run does)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"playwright is not importable ({err}): install the dev dependencies"
    return None


# Starts the real webserver, daemon and a browser: `make test-fast` skips it.
# Runs the project's definitions on the example's seeded data (fails saying so otherwise).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]
# Decided before any fixture runs, so a machine without the browser seeds and starts nothing.
UNAVAILABLE = _unavailable_reason()

CHECK_EXECUTIONS = """
query($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 20) {
    runId
    status
    partition
    evaluation {
      success
      description
      metadataEntries { label ... on TextMetadataEntry { text } }
    }
  }
}
"""

RUN_CHECK_SELECTION = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { assetCheckSelection { name assetKey { path } } }
    ... on PythonError { message }
  }
}
"""

RUNS_WITH_TAGS = """
query($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename
    ... on Runs { results { runId status assetSelection { path } tags { key value } } }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def dagster(tmp_path: Path, seeded_sqlite: Path):
    """Webserver + daemon on an embedded instance over a copy of the seeded warehouse."""
    root = tmp_path / "local"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    home = embedded_home(tmp_path / "dagster_home")
    # A new instance greets its first visitor with a "Join the Dagster community" dialog over
    # every page; this file is what Dagster writes once someone dismissed it.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    env = {"LOCAL_DATA_DIR": str(root), "DAGSTER_DEPLOYMENT": "local"}
    with DagsterProcesses(home, env, log_dir=tmp_path) as processes:
        yield processes


@pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
def test_a_user_materializes_a_day_reads_its_gates_and_previews_the_sensor(browser, dagster):
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SCREENSHOTS.glob("[0-9][0-9]_*.png"):
        stale.unlink()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    base = f"http://127.0.0.1:{dagster.port}"

    def screenshot(name: str) -> None:
        # Disabled animations: a dialog is shot fully faded in, not half-way.
        page.screenshot(path=SCREENSHOTS / name, animations="disabled")

    try:
        run_id = _materialize_one_day(page, expect, base, dagster, screenshot)
        _read_the_days_gate_results(page, expect, base, run_id, screenshot)
        _the_deadline_check_judged_the_day(page, expect, base, dagster, run_id, screenshot)
        _preview_the_sensor_tick(page, expect, base, screenshot)
    except BaseException:
        screenshot("99_failure.png")
        print(dagster.logs())  # pytest shows captured output with the failure
        raise
    finally:
        page.close()


def _materialize_one_day(page, expect, base, dagster, screenshot) -> str:
    """Asset page -> Materialize… -> select only DAY -> launch; returns the succeeded run's id."""
    page.goto(f"{base}/assets/{ASSET}")
    materialize = page.get_by_role("button", name=re.compile(r"\bMaterialize(…|\.\.\.)?$"))
    expect(materialize).to_be_visible()
    expect(page.get_by_role("tab", name="Checks")).to_be_visible()
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    screenshot("01_asset_page.png")

    materialize.click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Launch runs to materialize {ASSET}")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Partition selection")).to_be_visible()
    # Settled before typing: the dialog loads the job's partition sets after opening.
    expect(dialog.get_by_text(re.compile(r"^Loading"))).to_have_count(0)
    expect(dialog.get_by_text("0 partitions", exact=True)).to_be_visible()
    screenshot("02_materialize_dialog.png")

    # The partition selection's text field takes keys and ranges, as a user types them.
    partitions = dialog.get_by_role("textbox").first
    partitions.click()
    partitions.fill(DAY)
    partitions.press("Enter")
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    launch = dialog.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    screenshot("03_one_partition_selected.png")

    launch.click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    expect(toast).to_be_visible()
    screenshot("04_run_launched.png")
    short_id = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)

    run_id = _wait_for_success(dagster, short_id)
    page.goto(f"{base}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"partition: {DAY}")).to_be_visible()
    screenshot("05_run_succeeded.png")
    return run_id


def _wait_for_success(dagster: DagsterProcesses, short_id: str) -> str:
    """The id of the run launched from the dialog, or of its automatic retry, once one of
    them succeeded (the embedded instance retries a crashed run once)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    family: list[dict] = []
    while time.monotonic() < deadline:
        result = dagster.graphql(
            RUNS_WITH_TAGS, {"tags": [{"key": "dagster/partition", "value": DAY}]}
        )["runsOrError"]
        assert result["__typename"] == "Runs", result
        family = [
            run
            for run in result["results"]
            if run["runId"].startswith(short_id)
            or _tags(run).get("dagster/root_run_id", "").startswith(short_id)
        ]
        for run in family:
            # The dialog asked for this asset and this day only, from the UI.
            assert run["assetSelection"] == [{"path": [ASSET]}], run
            assert _tags(run).get("dagster/from_ui") == "true", run
        succeeded = [run["runId"] for run in family if run["status"] == "SUCCESS"]
        if succeeded:
            return succeeded[0]
        final_failures = [
            run
            for run in family
            if run["status"] in ("FAILURE", "CANCELED")
            and _tags(run).get("dagster/will_retry") != "true"
        ]
        assert not final_failures, f"run {short_id} for {DAY} failed: {final_failures}"
        time.sleep(2)
    raise AssertionError(f"run {short_id} for {DAY} not done after {RUN_TIMEOUT_S}s: {family}")


def _tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def _read_the_days_gate_results(page, expect, base, run_id, screenshot) -> None:
    """Checks tab -> the gate -> Execution history -> DAY's evaluation and its metadata."""
    page.goto(f"{base}/assets/{ASSET}")
    page.get_by_role("tab", name="Checks").click()
    expect(page).to_have_url(re.compile(r"view=checks"))
    checks = page.get_by_text(re.compile(r"^Checks \(\d+\)$"))
    expect(checks).to_be_visible()
    gate = page.get_by_text(GATE, exact=True).first
    expect(gate).to_be_visible()
    # A manual run of one healthy day leaves no red check behind, about it or another day.
    expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()
    expect(page.get_by_text("Failed", exact=True)).to_have_count(0)
    screenshot("06_checks_tab.png")

    gate.click()
    expect(page).to_have_url(re.compile(f"checkDetail={GATE}"))
    page.get_by_role("tab", name="Execution history").click()
    day_rows = page.get_by_role("row").filter(has_text=DAY)
    expect(day_rows.first).to_be_visible()
    screenshot("07_gate_execution_history.png")

    # One row per evaluation; the evaluation of DAY carries the day as its `partition` entry
    # (a run of DAY alone writes that one row per gate: the day's verdict).
    seen = []
    for row in day_rows.all():
        row.get_by_role("button").last.click()  # the row's Metadata button
        dialog = page.get_by_role("dialog").filter(has_text="Metadata")
        expect(dialog.get_by_role("row").first).to_be_visible()
        metadata = _metadata(dialog)
        seen.append(metadata)
        if metadata.get("partition") == DAY and "observed_value" in metadata:
            break
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_have_count(0)
    else:
        raise AssertionError(f"no evaluation of {GATE} names partition {DAY}: {seen}")
    expect(row.get_by_text("Passed")).to_be_visible()
    screenshot("08_gate_result_for_day.png")
    # Numeric, so the UI plots them; for this full day: 24 hours with events of 24 required.
    assert float(metadata["observed_value"]) == 24, metadata
    assert float(metadata["threshold_value"]) == 24, metadata
    dialog.get_by_role("button", name="Close").click()


def _the_deadline_check_judged_the_day(page, expect, base, dagster, run_id, screenshot) -> None:
    """The UI added daily_partition_landed to the run; its evaluation in that run is about the
    day materialized, and passed (an unscoped check once judged a day the run did not touch)."""
    selection = dagster.graphql(RUN_CHECK_SELECTION, {"runId": run_id})["runOrError"]
    assert selection["__typename"] == "Run", selection
    assert {"name": DEADLINE_CHECK, "assetKey": {"path": [ASSET]}} in selection[
        "assetCheckSelection"
    ], selection
    executions = dagster.graphql(
        CHECK_EXECUTIONS, {"assetKey": {"path": [ASSET]}, "checkName": DEADLINE_CHECK}
    )["assetCheckExecutions"]
    of_run = [e for e in executions if e["runId"] == run_id]
    # One evaluation against the day (resolving the execution Dagster planned for the run's
    # partition), and the run-level result; nothing left Skipped.
    [day] = [e for e in of_run if e["partition"] == DAY]
    [summary] = [e for e in of_run if e["partition"] is None]
    assert all(e["status"] == "SUCCEEDED" and e["evaluation"]["success"] for e in of_run), of_run
    assert day["evaluation"]["description"] == f"{DAY}: landed (asked for by this run)", day
    assert summary["evaluation"]["description"] == (
        f"partition(s) {DAY} (asked for by this run) landed"
    ), summary
    for execution in (day, summary):
        metadata = {e["label"]: e.get("text") for e in execution["evaluation"]["metadataEntries"]}
        assert metadata["expected_partition"] == DAY, execution

    # The same, as a user reads it: the check's execution history, this run's row, Passed.
    page.goto(f"{base}/assets/{ASSET}")
    page.get_by_role("tab", name="Checks").click()
    page.get_by_text(DEADLINE_CHECK, exact=True).first.click()
    expect(page).to_have_url(re.compile(f"checkDetail={DEADLINE_CHECK}"))
    page.get_by_role("tab", name="Execution history").click()
    row = page.get_by_role("row").filter(has_text=f"{DAY}: landed (asked for by this run)")
    expect(row).to_have_count(1)
    expect(row.get_by_text("Passed")).to_be_visible()
    expect(page.get_by_text("has not landed by its")).to_have_count(0)
    expect(page.get_by_text("Skipped", exact=True)).to_have_count(0)
    screenshot("09_deadline_check_for_day.png")


def _metadata(dialog) -> dict[str, str]:
    """The metadata dialog's key/value table."""
    entries = {}
    for row in dialog.get_by_role("row").all():
        cells = [text.strip() for text in row.get_by_role("cell").all_inner_texts()]
        if len(cells) >= 2:
            entries[cells[0]] = cells[1]
    return entries


def _preview_the_sensor_tick(page, expect, base, screenshot) -> None:
    """The sensor's page (from the asset's automation details) -> Preview tick result with
    the cursor left empty, as a first-time user does."""
    page.goto(f"{base}/assets/{ASSET}")
    page.get_by_role("link", name=SENSOR).click()
    expect(page).to_have_url(re.compile(f"/sensors/{SENSOR}"))
    preview = page.get_by_role("button", name="Preview tick result")
    expect(preview).to_be_visible()
    expect(page.get_by_text("Latest tick")).to_be_visible()
    # Settled: the running toggle is drawn and the tick history has loaded.
    expect(page.get_by_role("checkbox").first).to_be_attached()  # the switch's input is hidden
    expect(page.get_by_text(re.compile(r"^Loading ticks"))).to_have_count(0)
    screenshot("10_sensor_page.png")

    preview.click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Preview tick result for {SENSOR}")
    expect(dialog.get_by_text("Cursor value (optional)")).to_be_visible()
    dialog.get_by_role("button", name="Continue").click()
    # "Try again" appears once the evaluation came back, whatever its outcome.
    expect(dialog.get_by_role("button", name="Try again")).to_be_visible()
    screenshot("11_sensor_tick_preview.png")
    text = dialog.inner_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    result = lines[lines.index("Result") + 1]
    # Issue 13, item 1: an empty cursor used to crash it ("Invalid isoformat string: ''").
    assert "Invalid isoformat string" not in text, f"the tick preview crashed:\n{text}"
    assert result in ("Skipped", "Success", "Requested"), f"the tick preview failed:\n{text}"
    # Either it says why it skipped (the seeded watermark is behind today) or what it requests.
    assert "Skip reason:" in text or re.search(r"Requested runs \([1-9]\d*\)", text), text
    dialog.get_by_role("button", name="Close").click()
