"""The ledger: the collector's durable state (SQLite embedded, PostgreSQL in production)."""
