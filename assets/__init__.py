"""Software-defined assets, one subpackage per capability: sources, features, quality gates,
write-audit-publish, and the daily model; plus the shared daily partitions and the asset jobs."""
