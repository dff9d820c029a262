"""The upstream contract: the warehouse's event table as the pipeline reads it."""

import pyarrow as pa

EVENTS_TABLE = "events"
WATERMARKS_TABLE = "load_watermarks"

EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        # The warehouse partitions events by event_date; event_time must fall inside that day.
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("price", pa.float64()),
        pa.field("dwell_seconds", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("country", pa.string()),
        pa.field("item_category", pa.string()),
    ]
)
