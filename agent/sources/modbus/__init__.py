"""Modbus TCP: decode registers, coalesce points into requests, poll devices behind shared connections."""
