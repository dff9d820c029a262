"""Helpers shared by several test modules (never imported by project code or benchmarks)."""
