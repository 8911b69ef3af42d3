"""What a register holds for an exact quantity: the meter's own resolution, and nothing else.

Totalisers are floored from the exact counter (start + true cumulative), so a meter never runs ahead of the
truth and the reading error of any delta is below one register step. Integer counters wrap like the register
does (a uint32 kg counter returns to 0 after 2^32 kg). Instantaneous values are rounded to the nearest
representable value. Every function takes scalars or numpy arrays, so the live server and the generator
quantise identically.
"""

from __future__ import annotations

import numpy as np

from simulators.kiln.points import ModbusPoint

_INT_BITS = {"int32": (32, True), "uint32": (32, False), "int64": (64, True)}


def _wrap(raw: np.ndarray, dtype: str) -> np.ndarray:
    bits, signed = _INT_BITS[dtype]
    if bits == 64:
        return raw
    span = np.int64(1) << bits
    half = span >> 1 if signed else np.int64(0)
    return (raw + half) % span - half


def _floor_float32(exact: np.ndarray) -> np.ndarray:
    nearest = exact.astype(np.float32)
    below = np.nextafter(nearest, np.float32(-np.inf))
    return np.where(nearest.astype(np.float64) > exact, below, nearest)


def counter_register(point: ModbusPoint, truth: float | np.ndarray) -> np.ndarray:
    """The totaliser's register value for ``truth`` (true cumulative since the start, in the doc's unit)."""
    if point.start is None:
        raise ValueError(f"{point.name} is not a totaliser")
    steps_per_unit = round(1.0 / point.scale)  # register steps per doc unit: 1000 Wh per kWh, 5 per kWh ...
    if abs(steps_per_unit * point.scale - 1.0) > 1e-12:
        raise ValueError(f"{point.name}: a totaliser's scale must be 1/integer, not {point.scale}")
    exact = np.asarray(truth, dtype=np.float64) * steps_per_unit
    if point.dtype == "float32":
        return _floor_float32(point.start + exact)
    if point.dtype == "float64":
        return point.start + exact
    # Integer counters: the start is a whole register value, so floor(start + x) = start + floor(x).
    whole = np.floor(exact).astype(np.int64)
    return _wrap(np.int64(point.start) + whole, point.dtype)


def rate_register(point: ModbusPoint, rate: float | np.ndarray) -> np.ndarray:
    """The register value of an instantaneous point showing ``rate`` (in the doc's unit)."""
    raw = np.asarray(rate, dtype=np.float64) / point.scale
    if point.dtype == "float32":
        return raw.astype(np.float32)
    if point.dtype == "float64":
        return raw
    return _wrap(np.rint(raw).astype(np.int64), point.dtype)


def register_value(point: ModbusPoint, quantity: float | np.ndarray) -> np.ndarray:
    """Register value for the point's quantity: a truth cumulative for totalisers, a rate otherwise."""
    return counter_register(point, quantity) if point.is_counter else rate_register(point, quantity)


def scaled(point: ModbusPoint, register: np.ndarray) -> np.ndarray:
    """The value an agent publishes: register × scale, in float64, in the doc's unit."""
    return np.asarray(register).astype(np.float64) * point.scale
