"""Simulated plants that know their true energy use: ground truth for tests and the demo."""
