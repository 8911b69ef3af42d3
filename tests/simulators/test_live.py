"""The live plant as other tests launch it: ``kilnwatch sim kiln`` in a subprocess, read while it runs."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import struct
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from asyncua import Client, ua
from pymodbus.client import ModbusTcpClient

from tests.servers import free_port, stop, wait_for_port


def read_truth(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    t_ms = np.array([round(datetime.fromisoformat(r["t"]).timestamp() * 1000) for r in rows])
    columns = {c: np.array([float(r[c]) for r in rows]) for c in rows[0] if c != "t"}
    return t_ms, columns


async def read_clinker_rate(port: int) -> float:
    async with Client(f"opc.tcp://127.0.0.1:{port}/kilnwatch/dcs") as client:
        idx = await client.get_namespace_index("urn:kilnwatch:sim:dcs")
        return await client.get_node(ua.NodeId("KilnLine1.ClinkerBeltScale_tph", idx)).read_value()


def test_live_run_serves_registers_that_line_up_with_the_truth_file(tmp_path: Path) -> None:
    modbus_port, opcua_port = free_port(), free_port()
    truth_path = tmp_path / "truth.csv"
    kilnwatch = Path(sys.executable).with_name("kilnwatch")
    cmd = [str(kilnwatch), "sim", "kiln", "--modbus-port", str(modbus_port), "--opcua-port", str(opcua_port)]
    started = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, "--truth", str(truth_path), "--truth-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(modbus_port, proc=proc)
        wait_for_port(opcua_port, proc=proc)
        assert time.monotonic() - started < 15

        # Read the raw-mill Wh counter (unit 1, int64 at 3203) and note the wall-clock window of each read.
        client = ModbusTcpClient("127.0.0.1", port=modbus_port)
        assert client.connect()
        readings = []
        for _ in range(12):
            before = time.time()
            rr = client.read_holding_registers(3203, count=4, device_id=1)
            after = time.time()
            assert not rr.isError()
            wh = struct.unpack(">q", struct.pack(">HHHH", *rr.registers))[0]
            readings.append((math.floor(before * 1000), math.ceil(after * 1000), wh))
            time.sleep(0.25)
        client.close()
        dcs_clinker_tph = asyncio.run(read_clinker_rate(opcua_port))
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
        stop(proc)
    assert proc.returncode == 0, stderr

    ready = [json.loads(line) for line in stderr.splitlines() if '"sim.ready"' in line]
    assert ready and ready[0]["modbus_port"] == modbus_port and ready[0]["opcua_port"] == opcua_port

    t_ms, truth = read_truth(truth_path)
    assert len(t_ms) >= 10 and np.all(np.diff(t_ms) > 0)
    for column, values in truth.items():
        if column != "coal_ncv_mj_per_kg":
            assert values[0] == 0.0 and np.all(np.diff(values) >= 0), column
            assert values[-1] > 0, column
    assert np.all(truth["coal_ncv_mj_per_kg"] == 23.0)

    # Each read happened at some model instant inside its window: the Wh delta between two reads lies
    # within what the truth file says for the earliest and latest instants, give or take one whole Wh.
    def wh_at(ms: int) -> float:
        assert t_ms[0] <= ms <= t_ms[-1]
        return float(np.interp(ms, t_ms, truth["raw_mill_kwh"])) * 1000

    lo0, hi0, wh0 = readings[0]
    for lo, hi, wh in readings[1:]:
        assert wh_at(lo) - wh_at(hi0) - 1.001 <= wh - wh0 <= wh_at(hi) - wh_at(lo0) + 1.001
    assert readings[-1][2] > wh0

    # The DCS clinker rate agrees with the slope of the true clinker total (rates wander ~0.1 %/s at most).
    slope_tph = (truth["clinker_t"][-1] - truth["clinker_t"][0]) / ((t_ms[-1] - t_ms[0]) / 3.6e6)
    assert abs(dcs_clinker_tph / slope_tph - 1) < 0.01
    assert 180 < dcs_clinker_tph < 240
