"""The training asset's config reaches the trainer's TrainConfig: the data-loading mode a
deployment selects, in-memory by default and with the fingerprint it always had."""

import dagster as dg
import pytest

from assets.model.model_checkpoint import ModelTrainingConfig
from contract.model_inputs import MODEL_INPUTS
from training.config import TrainConfig, fingerprint


def test_in_memory_is_the_default_and_keeps_its_fingerprint():
    config = ModelTrainingConfig().train_config(MODEL_INPUTS)
    assert config.data_loading == "in_memory"
    without = TrainConfig.from_dict(
        {
            **{k: v for k, v in config.to_dict().items() if k not in ("data_loading",)},
            "shuffle_buffer_rows": 7,
            "loader_workers": 3,
        }
    )
    # The streaming fields do not enter an in-memory run's fingerprint.
    assert fingerprint(config, {"k": "v"}, "c") == fingerprint(without, {"k": "v"}, "c")


def test_streaming_settings_reach_the_trainer_and_its_fingerprint():
    settings = {"data_loading": "streaming", "shuffle_buffer_rows": 65_536, "loader_workers": 2}
    config = ModelTrainingConfig(**settings).train_config(MODEL_INPUTS)
    assert {k: getattr(config, k) for k in settings} == settings
    assert config.model_inputs == MODEL_INPUTS
    in_memory = ModelTrainingConfig().train_config(MODEL_INPUTS)
    assert fingerprint(config, {"k": "v"}, "c") != fingerprint(in_memory, {"k": "v"}, "c")


def test_an_unknown_data_loading_mode_is_refused_by_the_run_config():
    job = _job()
    for mode in ("in_memory", "streaming"):
        dg.validate_run_config(job, {"ops": {"train": {"config": {"data_loading": mode}}}})
    with pytest.raises(dg.DagsterInvalidConfigError, match="data_loading"):
        dg.validate_run_config(job, {"ops": {"train": {"config": {"data_loading": "lazy"}}}})


def _job() -> dg.JobDefinition:
    @dg.op
    def train(config: ModelTrainingConfig) -> None:
        del config

    @dg.job
    def training_job():
        train()

    return training_job
