"""Readings files (CSV, gzip CSV, Parquet) → per-channel arrays for ``kilnwatch kpi compute``."""
