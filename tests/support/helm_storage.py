"""The instance storage the official chart (1.13.27) writes into dagster.yaml from our values.

templates/configmap-instance.yaml gives run, event-log and schedule storage the same
`postgres_db` block, from helpers/instance/_postgresql.tpl: username, the password from
DAGSTER_PG_PASSWORD, host, database, port, params, and `scheme` only when postgresqlScheme is
set. Every process of our image that opens the instance (run workers, the code server, the SLO
exporter) connects with that block and our lock's packages.
"""

from tests.support.queue_policy import helm_merge

# The chart's own values.yaml for what ours leaves unset.
CHART_POSTGRESQL_DEFAULTS = {
    "postgresqlUsername": "test",
    "postgresqlDatabase": "test",
    "postgresqlParams": {},
    "postgresqlScheme": "",
    "service": {"port": 5432},
}
STORAGES = (
    ("schedule_storage", "dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
    ("run_storage", "dagster_postgres.run_storage", "PostgresRunStorage"),
    ("event_log_storage", "dagster_postgres.event_log", "PostgresEventLogStorage"),
)


def render_helm_storage(values: dict, hostname: str) -> dict:
    """The three storage blocks as the chart renders them; `hostname` stands for the chart's
    dagster.postgresql.host (the subchart's Service or postgresqlHost)."""
    postgresql = helm_merge(CHART_POSTGRESQL_DEFAULTS, values.get("postgresql") or {})
    block = {
        "username": postgresql["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": hostname,
        "db_name": postgresql["postgresqlDatabase"],
        "port": postgresql["service"]["port"],
        "params": postgresql["postgresqlParams"],
    }
    if postgresql["postgresqlScheme"]:
        block["scheme"] = postgresql["postgresqlScheme"]
    return {
        key: {"module": module, "class": cls, "config": {"postgres_db": block}}
        for key, module, cls in STORAGES
    }
