"""The model-input declaration (training/model_inputs.py): it survives JSON unchanged, and a
declaration that cannot describe a model is refused naming the field, the value and the rule."""

from __future__ import annotations

import dataclasses
import json

import pytest

from contract.model_inputs import CTR_MODEL_INPUTS
from training.config import ConfigError, TrainConfig
from training.model_inputs import ModelInputs, ModelInputsError


def _declared(**changes) -> dict:
    """The example's declaration as JSON, with `changes` applied at dotted paths."""
    data = json.loads(json.dumps(CTR_MODEL_INPUTS.to_dict()))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return data


_DELETE = object()


def test_the_declaration_round_trips_through_json_and_the_training_config():
    text = json.dumps(CTR_MODEL_INPUTS.to_dict(), sort_keys=True)
    assert ModelInputs.from_dict(json.loads(text)) == CTR_MODEL_INPUTS
    config = TrainConfig(model_inputs=CTR_MODEL_INPUTS)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    # A config without one keeps the spelling configs had before they carried it.
    assert "model_inputs" not in TrainConfig().to_dict()


def test_the_derived_views_follow_the_declaration():
    assert CTR_MODEL_INPUTS.tables == (
        "training_examples",
        "user_daily_features",
        "item_daily_features",
    )
    assert CTR_MODEL_INPUTS.numeric_features(history=False) == ("log1p_price", "price_missing")
    assert len(CTR_MODEL_INPUTS.numeric_features(history=True)) == 8
    for column in ("event_id", "feature_date", "label", "user_id", "device", "price"):
        assert column in CTR_MODEL_INPUTS.example_columns


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        ({"examples__colour": "red"}, "model_inputs.examples", "unknown fields ['colour']"),
        ({"examples__label": _DELETE}, "model_inputs.examples", "lacks the required fields"),
        ({"categorical__2__kind": "one_hot"}, "categorical[2].kind", "'one_hot' is not one of"),
        ({"categorical__2__buckets": 1}, "categorical[2].buckets", "buckets >= 2"),
        ({"categorical__5__maximum": -1}, "categorical[5]", "minimum <= maximum"),
        ({"categorical__0__salt": None}, "categorical[0].salt", "integer salt"),
        ({"categorical__0__buckets": 99}, "factorized.user", "TrainConfig.user_buckets"),
        ({"factorized__item": "device"}, "factorized.item", "must be an id_hash input"),
        ({"factorized__item": "sku"}, "factorized.item", "not a declared categorical input"),
        ({"numeric__0__transform": "sqrt"}, "numeric[0].transform", "'sqrt' is not one of"),
        ({"history__0__lag_days": 0}, "history[0].lag_days", "its own day's positives"),
        ({"history__1__window_days": 0}, "history[1].window_days", ">= 1"),
        ({"history__1__prefix": "user"}, "history prefixes", "must differ"),
        ({"history__1__table": "training_examples"}, "history[1].table", "another role"),
        ({"history__0__prior_positives": 7.0}, "history[0]", "prior_positives < prior_exposures"),
        ({"segments": [""]}, "segments[0]", "non-empty string"),
        ({"history": {}}, "model_inputs.history", "must be a list"),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_field(changes, field, detail):
    with pytest.raises(ModelInputsError) as refused:
        ModelInputs.from_dict(_declared(**changes))
    assert field in str(refused.value) and detail in str(refused.value)
    # Through the training config (the trainer's --config-json) it is a config error.
    with pytest.raises(ConfigError, match="model_inputs"):
        TrainConfig.from_dict({"model_inputs": _declared(**changes)})


def test_a_declaration_built_in_python_is_checked_the_same_way():
    with pytest.raises(ModelInputsError, match=r"categorical\[1\].column 'user_id' is declared"):
        dataclasses.replace(
            CTR_MODEL_INPUTS,
            categorical=(CTR_MODEL_INPUTS.categorical[0],) * 2 + CTR_MODEL_INPUTS.categorical,
        )
