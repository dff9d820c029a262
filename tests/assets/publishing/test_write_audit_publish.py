"""The run-level gate results say what happened across the run's partitions."""

import dagster as dg
import pyarrow as pa
import pytest

from assets.partitions import daily_partitions, partition_range_tags
from assets.publishing.gate_reports import read_approval
from assets.publishing.write_audit_publish import (
    Evaluation,
    PublishPolicy,
    gate_check_specs,
    publish_gated_partitions,
)
from assets.quality.gates import GateResult
from resources.notifier import Notifier
from tests.support.example import example_daily_events

RANGE = ("2026-11-03", "2026-11-04")


def test_a_warn_only_gate_that_failed_is_reported_as_a_warning_naming_the_partitions(
    local_resources,
):
    # Prices in the generator reach far above 1: the warn-only range gate fails on both days.
    result = dg.materialize(
        [example_daily_events],
        resources=local_resources,
        tags=partition_range_tags(*RANGE),
        run_config={
            "ops": {
                "daily_events": {
                    "config": {"value_max": {"price": 1}, "warn_only": ["value_ranges"]}
                }
            }
        },
    )
    assert result.success, "a warn-only gate must not block publication"
    summaries = {
        evaluation.check_name: evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.partition is None
    }
    ranges = summaries["value_ranges"]
    assert ranges.passed is False
    assert ranges.severity == dg.AssetCheckSeverity.WARN
    assert all(day in ranges.description for day in RANGE)
    assert ranges.metadata["failed_partitions"].value == 2
    assert summaries["unique_key"].passed is True
    assert summaries["unique_key"].metadata["failed_partitions"].value == 0


def _one_day(local_resources) -> dict[str, dg.AssetCheckEvaluation]:
    """A run of RANGE[0] alone: its one evaluation per gate, the day's verdict."""
    result = dg.materialize(
        [example_daily_events], partition_key=RANGE[0], resources=local_resources
    )
    evaluations = result.get_asset_check_evaluations()
    # One event per gate: the summary is the day's verdict, not a second record of it.
    assert len(evaluations) == len(example_daily_events.check_specs)
    return {e.check_name: e for e in evaluations}


def _first_day_of_range(local_resources) -> dict[str, dg.AssetCheckEvaluation]:
    """A run of RANGE: its evaluations of RANGE[0], recorded per day besides the summaries."""
    result = dg.materialize(
        [example_daily_events], resources=local_resources, tags=partition_range_tags(*RANGE)
    )
    return {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.partition == RANGE[0]
    }


@pytest.mark.parametrize("run_of", [_one_day, _first_day_of_range])
def test_each_days_gate_results_carry_the_day_and_plottable_numbers(local_resources, run_of):
    per_day = run_of(local_resources)
    assert set(per_day) == {spec.name for spec in example_daily_events.check_specs}
    completeness = per_day["completeness"]
    assert completeness.metadata["partition"].value == RANGE[0]
    assert completeness.description.startswith(f"{RANGE[0]}: ")
    assert completeness.metadata["observed_value"].value == 24.0
    assert completeness.metadata["threshold_value"].value == 24.0
    # Every gate with a verdict of its own has numbers; the history gates have none until there
    # is a history to compare with (they pass and say so).
    for name in ("schema_contract", "volume", "null_rate", "value_ranges", "unique_key"):
        assert isinstance(per_day[name].metadata["observed_value"].value, float), name
        assert isinstance(per_day[name].metadata["threshold_value"].value, float), name
    assert "observed_value" not in per_day["event_mix"].metadata


def test_each_summary_targets_the_runs_materialization_at_one_event_log_lookup(
    local_resources, monkeypatch
):
    # Dagster finds a check result's target materialization with one event-log query; a
    # result carried inside a MaterializeResult cost it a second one, to learn which check it
    # is. Every query is a round trip to the instance's database in production.
    lookups = []
    fetch = dg.DagsterInstance.fetch_materializations

    def counted(instance, records_filter, *args, **kwargs):
        lookups.append(records_filter)
        return fetch(instance, records_filter, *args, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "fetch_materializations", counted)
    result = dg.materialize(
        [example_daily_events], partition_key=RANGE[0], resources=local_resources
    )
    assert result.success
    summaries = [e for e in result.get_asset_check_evaluations() if e.partition is None]
    assert len(summaries) == len(example_daily_events.check_specs) > 1
    for summary in summaries:
        assert summary.target_materialization_data.run_id == result.run_id, summary.check_name
    assert len([f for f in lookups if f.asset_key == example_daily_events.key]) == len(summaries)


def test_a_day_that_fails_to_store_keeps_its_verdicts(local_resources, monkeypatch):
    # A run of one day records its verdicts in the summaries, which a failed step never writes:
    # when storing the day fails, the step records them per day before it fails.
    import assets.publishing.write_audit_publish as write_audit_publish

    def unreachable_store(*args, **kwargs):
        raise OSError("object store unreachable")

    monkeypatch.setattr(write_audit_publish, "publish_if_passed", unreachable_store)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [example_daily_events],
        partition_key=RANGE[0],
        resources=local_resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    # Read from the event log: a failed step's result leaves out what the step logged.
    evaluations = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    assert {e.check_name for e in evaluations} == {
        spec.name for spec in example_daily_events.check_specs
    }
    assert all(e.partition == RANGE[0] and e.passed for e in evaluations)


def test_a_gate_without_a_verdict_stops_the_day_before_anything_is_published(local_resources):
    # The checks an asset declares and the verdicts its evaluate returns must match one to one,
    # or a one-day run would summarise a gate nobody judged: it is refused before publishing.
    store = local_resources["storage"].open_store()
    gates = ("first_gate", "second_gate")

    @dg.asset(partitions_def=daily_partitions, check_specs=gate_check_specs("gated", gates))
    def gated(context: dg.AssetExecutionContext):
        return publish_gated_partitions(
            context,
            asset_name="gated",
            layer="features",
            primary_key=["key"],
            column_descriptions={},
            gate_names=gates,
            store=store,
            notifier=Notifier(),
            evaluate=lambda partition: Evaluation(
                pa.table({"key": [1]}), [GateResult("first_gate", True, "1", "1", "fine")]
            ),
            policy=PublishPolicy(),
        )

    with pytest.raises(ValueError, match="second_gate") as refused:
        dg.materialize([gated], partition_key=RANGE[0])
    assert f"gated {RANGE[0]}: the gates evaluated (first_gate)" in str(refused.value)
    assert read_approval(store, "gated", RANGE[0], daily_partitions) is None
