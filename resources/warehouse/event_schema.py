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

# One line of business meaning per column: the UI's column table shows it.
EVENT_COLUMN_DESCRIPTIONS = {
    "event_id": "Upstream id of the event, unique per event.",
    "event_date": "UTC day the warehouse files the event under (the partition).",
    "event_time": "When the event happened (UTC, microseconds).",
    "user_id": "The user who saw or acted on the item.",
    "item_id": "The catalogue item shown or acted on.",
    "event_type": "impression, click, add_to_cart or purchase.",
    "price": "Item price at the time of the event, in the shop's currency.",
    "dwell_seconds": "Seconds spent on the item page after a click (clicks only).",
    "device": "Device family of the session: ios, android or web.",
    "country": "User's country (ISO 3166 alpha-2).",
    "item_category": "Catalogue category of the item.",
}
