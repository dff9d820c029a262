"""Write-audit-publish: deterministic object keys and parquet bytes, gate reports next to the
data, and the verified reads every downstream step goes through."""
