"""A second daily table, unlike the example's events: marketplace orders with other column
names, types and distributions, and strong weekday effects (weekends bring more orders, more
wallet payments, larger baskets). The distribution gates' tests and false-positive benchmark
use it to show that nothing in the gates is fitted to the example.

Same seed and day -> the same rows.
"""

import datetime as dt

import numpy as np
import pyarrow as pa

ORDERS_SCHEMA = pa.schema(
    [
        pa.field("order_ref", pa.string(), nullable=False),
        pa.field("placed_at", pa.timestamp("s", tz="UTC"), nullable=False),
        pa.field("region", pa.string()),
        pa.field("payment_method", pa.string()),
        pa.field("basket_value", pa.float64()),
        pa.field("items_count", pa.int64()),
        pa.field("delivery_km", pa.float64()),
    ]
)
IDENTITY_KEY = "order_ref"
TIME_COLUMN = "placed_at"
CATEGORICAL = ("region", "payment_method")
NUMERIC = ("basket_value", "items_count", "delivery_km")
CONTENT = ("region", "payment_method", "basket_value", "items_count", "delivery_km")

REGIONS = np.array([f"R{n:02d}" for n in range(1, 13)])
# Zipf-like: a few large regions and a long tail.
_REGION_WEIGHT = 1.0 / np.arange(1, 13) ** 1.1
PAYMENTS = np.array(["card", "wallet", "invoice", "cash"])
_PAYMENT_WEEKDAY = np.array([0.55, 0.2, 0.2, 0.05])
_PAYMENT_WEEKEND = np.array([0.45, 0.35, 0.1, 0.1])
# Orders peak at lunch and in the evening.
_HOURLY = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 5, 7, 9, 7, 5, 4, 4, 5, 7, 9, 9, 7, 4, 2])


def generate_orders(day: dt.date, base_orders: int = 600, *, seed: int = 11) -> pa.Table:
    """One day of orders; weekends differ from weekdays in volume, payment mix and baskets."""
    rng = np.random.default_rng([seed, day.toordinal()])
    weekend = day.weekday() >= 5
    count = int(base_orders * (1.5 if weekend else 1.0) * rng.uniform(0.9, 1.1))
    hours = rng.choice(24, size=count, p=_HOURLY / _HOURLY.sum())
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
    seconds = np.sort(start + hours * 3600 + rng.integers(0, 3600, count))
    region_weight = _REGION_WEIGHT * np.where(np.arange(12) < 3, 1.0 + 0.3 * weekend, 1.0)
    payment = _PAYMENT_WEEKEND if weekend else _PAYMENT_WEEKDAY
    return pa.table(
        {
            "order_ref": [f"o-{day:%Y%m%d}-{i:05d}" for i in range(count)],
            "placed_at": pa.array(seconds, pa.int64()).cast(ORDERS_SCHEMA.field("placed_at").type),
            "region": REGIONS[rng.choice(12, size=count, p=region_weight / region_weight.sum())],
            "payment_method": PAYMENTS[rng.choice(4, size=count, p=payment)],
            "basket_value": np.round(rng.gamma(2.0, 30.0 * (1.2 if weekend else 1.0), count), 2),
            "items_count": (rng.poisson(3.0 if weekend else 2.0, count) + 1).astype(np.int64),
            "delivery_km": np.round(rng.exponential(8.0, count), 1),
        },
        schema=ORDERS_SCHEMA,
    )
