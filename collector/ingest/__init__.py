"""Ingest: MQTT messages → validated batches → the ledger, acknowledged only after the commit."""
