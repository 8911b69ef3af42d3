"""KPIs: readings → per-channel quantities → indicators per line and period, live and offline."""
