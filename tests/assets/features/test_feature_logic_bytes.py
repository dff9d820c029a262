"""The feature tables keep their exact bytes across rewrites of the feature code.

The hashes were taken from the pandas implementation these functions replaced (FEATURE_CODE_VERSION
"1"): a table whose bytes change must come with a bumped code version, so that Dagster marks the
partitions computed by the old code as stale.
"""

import pytest

from assets.features.assets import FEATURE_CODE_VERSION
from assets.features.logic import FEATURE_TABLES
from assets.publishing.parquet import to_parquet_bytes
from tests.assets.features.golden_inputs import DAY, golden_inputs

EXPECTED_SHA256 = {
    "large/user_daily_features": "4b9b64d8f4e3a3e5dbdc2d5edf49e1e67ca23fbd2ddd18a25f46d7cc188d3310",
    "large/item_daily_features": "7c5a93889e61a266f39d6fd712cdb7a3cfcdc84062725e38ede11eb93d618d46",
    "large/training_examples": "bf8a95713e8d5d4ab5c3dd2f98572f4fb944a97891c37e4b16777f639d27e4c3",
    "small/user_daily_features": "1d568915b5fdaf2f3366ec51f8619d3bd6f360a1a816d38e2052becc86a4b0e3",
    "small/item_daily_features": "356a9cb2e02b678b221cea42a30d76535eacc2e87a1f2dc5fb6cd5f579214bf1",
    "small/training_examples": "e5daec88df94e1aa9ec72ae9c227dce01fdc3f0840292700b03c78af0ff2e408",
    "nulls/user_daily_features": "dc8096475a0a09b94cded0187c5bd6873fafe83c6a5e2e8ce60beab61a5da8c6",
    "nulls/item_daily_features": "5e3329c8f87e1289f1efc2516a2dc793fbb363c0309f4cd21d580bd5338b0010",
    "nulls/training_examples": "6780228ff76cd6de7a6fcb571b9b6beab458a024563ba90f34f4023567b27637",
    "ties/user_daily_features": "4650b9dcd627596ad4f0fbdbd5d0e0c8d6b4c879fbbb1e2b3033bccf3c1496aa",
    "ties/item_daily_features": "3aa0caeb5fe98a62c84edc693c0d8dea1626d61bab24b5f881bfbaf32f278391",
    "ties/training_examples": "0182f2aefcf0ba0d1bad7cd1fb83d418cecb35dbb09f4c94ab17f8abb15cb625",
    "empty/user_daily_features": "4cda7c48a4a3a193929f07a8be5aa9a872fac3010806a74508e866d3a7afd9ae",
    "empty/item_daily_features": "5db37f8eab529665fe31dc5a0b06900dcd6bd8fa3d61e98490e08202cb6c1022",
    "empty/training_examples": "c5dad91220403e3ba923b2e0375ac38ee4725687bc9d3543eac3a296c17e97e8",
}
INPUTS = golden_inputs()


@pytest.mark.parametrize("case", sorted(EXPECTED_SHA256))
def test_feature_table_bytes_are_unchanged(case):
    inputs, table_name = case.split("/")
    [table] = [t for t in FEATURE_TABLES if t.name == table_name]
    digest = to_parquet_bytes(table.compute(INPUTS[inputs], DAY)).sha256
    assert digest == EXPECTED_SHA256[case], (
        f"{table_name} computed from the '{inputs}' events changed its bytes under "
        f"FEATURE_CODE_VERSION {FEATURE_CODE_VERSION!r}: bump the version (and these hashes) "
        "if the change of output is intended, else the rewrite changed the features."
    )
