"""The demo plant: simulator, embedded broker, collector and the truth they are checked against."""
