"""The second schema's feature logic agrees with its hits, and the machinery builds its assets
from the declared tables (and refuses a declaration naming a table no feature asset publishes)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import dagster as dg
import pytest

from assets.features.assets import build_feature_assets
from assets.model.training_dataset import build_training_dataset
from resources.warehouse.backends import normalize_events
from tests.adapt.page_view_features import (
    PAGE_VIEW_INPUTS,
    PAGE_VIEW_TABLES,
    SIGNUP,
    VIEW,
    page_days,
    page_id,
    visit_outcomes,
    visitor_days,
)
from tests.adapt.page_views import PAGE_VIEWS, generate_page_views

DAY = dt.date(2026, 11, 4)


@pytest.fixture(scope="module")
def hits():
    return normalize_events(generate_page_views(DAY), PAGE_VIEWS)


def test_each_table_matches_its_schema_and_key(hits):
    for table in PAGE_VIEW_TABLES:
        computed = table.compute(hits, DAY)
        assert computed.schema.equals(table.schema), table.name
        keys = list(zip(*(computed[c].to_pylist() for c in table.primary_key), strict=True))
        assert len(set(keys)) == computed.num_rows > 0, table.name


def test_the_tables_count_the_hits_they_aggregate(hits):
    rows = hits.to_pylist()
    signed = {r["session_id"] for r in rows if r["action"] == SIGNUP}
    examples = visit_outcomes(hits, DAY).to_pylist()
    assert len(examples) == sum(r["action"] == VIEW for r in rows)
    assert {e["session_id"] for e in examples if e["signed_up"]} == signed
    assert 0 < len(signed) < len(examples)

    views = Counter(r["visitor"] for r in rows if r["action"] == VIEW)
    signups = Counter(r["visitor"] for r in rows if r["action"] == SIGNUP)
    for row in visitor_days(hits, DAY).to_pylist():
        assert (row["views"], row["signups"]) == (views[row["visitor"]], signups[row["visitor"]])

    per_page = Counter((e["page_path"], e["signed_up"]) for e in examples)
    for row in page_days(hits, DAY).to_pylist():
        assert row["page_id"] == page_id(row["page_path"])
        assert row["views"] == per_page[(row["page_path"], 0)] + per_page[(row["page_path"], 1)]
        assert row["signups"] == per_page[(row["page_path"], 1)]


def test_the_machinery_builds_the_assets_from_the_declared_tables():
    features = build_feature_assets(PAGE_VIEW_TABLES)
    assert [a.key.to_user_string() for a in features] == [t.name for t in PAGE_VIEW_TABLES]
    dataset = build_training_dataset(PAGE_VIEW_INPUTS, PAGE_VIEW_TABLES)
    upstream = {dep.to_user_string() for dep in dataset.asset_deps[dataset.key]}
    assert upstream == {"daily_events", *(t.name for t in PAGE_VIEW_TABLES)}
    assert dataset.key == dg.AssetKey("training_dataset")


def test_a_declaration_naming_an_unpublished_table_is_refused_naming_it():
    examples = dataclasses.replace(PAGE_VIEW_INPUTS.examples, table="visits")
    wrong = dataclasses.replace(PAGE_VIEW_INPUTS, examples=examples)
    with pytest.raises(ValueError, match=r"names tables \['visits'\] that no feature asset"):
        build_training_dataset(wrong, PAGE_VIEW_TABLES)
