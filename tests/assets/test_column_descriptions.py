"""Every column of every table asset says what it means (the UI's column table shows it)."""

from assets.features.assets import feature_assets
from assets.sources.daily_events import daily_events


def test_every_column_of_every_table_has_a_description():
    for asset in (daily_events, *feature_assets):
        [spec] = asset.specs
        columns = spec.metadata["dagster/column_schema"].columns
        undescribed = [column.name for column in columns if not column.description]
        assert columns and not undescribed, f"{spec.key.to_user_string()}: {undescribed}"
