"""Kilnwatch collector: ingest, ledger, KPIs, sinks."""
