"""The example's three feature tables as a DuckDB user would write them: plain SQL (sum, avg,
DuckDB's own mode), not bit-exact. `benchmarks/features.py` times the engine against it; a team
with other features rewrites these queries beside its own `logic.py`."""


def reference_queries(snapshot: str) -> list[str]:
    """One query per feature table, over the snapshot parquet file at `snapshot`."""
    events = f"read_parquet('{snapshot}')"
    return [
        f"""SELECT user_id,
                count(*) FILTER (event_type = 'impression') AS impressions,
                count(*) FILTER (event_type = 'click') AS clicks,
                count(*) FILTER (event_type = 'add_to_cart') AS add_to_carts,
                count(*) FILTER (event_type = 'purchase') AS purchases,
                clicks / nullif(impressions, 0) AS ctr,
                round(sum(CASE WHEN event_type = 'purchase' THEN price ELSE 0 END), 6) AS spend,
                avg(dwell_seconds) AS mean_dwell_seconds,
                count(DISTINCT item_id) AS distinct_items,
                mode(device) AS main_device, mode(country) AS country
            FROM {events} GROUP BY user_id ORDER BY user_id""",
        f"""SELECT item_id, mode(item_category) AS item_category,
                count(*) FILTER (event_type = 'impression') AS impressions,
                count(*) FILTER (event_type = 'click') AS clicks,
                count(*) FILTER (event_type = 'purchase') AS purchases,
                clicks / nullif(impressions, 0) AS ctr,
                round(sum(CASE WHEN event_type = 'purchase' THEN price ELSE 0 END), 6)
                    AS revenue,
                avg(price) AS mean_price, count(DISTINCT user_id) AS distinct_users
            FROM {events} GROUP BY item_id ORDER BY item_id""",
        f"""WITH clicked AS (
                SELECT DISTINCT user_id, item_id FROM {events} WHERE event_type = 'click'
            )
            SELECT e.event_id, e.user_id, e.item_id, hour(e.event_time) AS hour_of_day,
                e.device, e.country, e.item_category, e.price,
                (c.user_id IS NOT NULL)::TINYINT AS label
            FROM {events} e LEFT JOIN clicked c USING (user_id, item_id)
            WHERE e.event_type = 'impression' ORDER BY e.event_id""",
    ]
