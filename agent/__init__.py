"""Kilnwatch edge agent: polls Modbus and OPC UA sources and publishes batches over MQTT."""
