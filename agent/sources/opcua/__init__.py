"""OPC UA: poll a server's nodes with one Read call per interval; reconnect with a new session on failure."""
