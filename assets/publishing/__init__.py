"""Write-audit-publish:
keys                 deterministic object keys, built only from validated partition keys
parquet              Arrow to parquet bytes or a file, fixed settings (equal tables, equal bytes)
gate_reports         versioned objects, audit reports, the approval pointer, verified reads
write_audit_publish  gate each partition, record the verdicts, publish only what passes
"""
