"""Modbus TCP, RTU and RTU over TCP: decode registers, coalesce points into requests, poll devices that share
connections, one request at a time per connection."""
