"""``kilnwatch agent check --probe`` on an OPC UA config, as a process, against the simulated DCS (a real
asyncua server): which points the server answers, and why each other one has no value.

What this prevents: a config that passes ``check --probe`` and then publishes only BAD readings for a node id
with a typo, a namespace the server lacks, or an instrument the DCS marks Bad; and the reverse, a check that
fails a good config. The exit status is 1 if any point went unanswered, 0 if every one answered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.kiln.model import KilnLine
from simulators.kiln.opcua_server import DcsServer
from tests.servers import free_port

NSU = "nsu=urn:kilnwatch:sim:dcs;s=KilnLine1."

CONFIG = """
[agent]
id = "gw1"
site = "plant1"

[mqtt]
port = {broker}

[[opcua]]
name = "dcs"
endpoint = "opc.tcp://127.0.0.1:{port}/kilnwatch/dcs"
timeout = 4.0
"""

POINT = """
[[opcua.points]]
name = "{name}"
node = "{node}"
"""

ANSWERING = {"feed": NSU + "KilnFeed_tph", "clinker": "ns=2;s=KilnLine1.ClinkerBeltScale_tph"}
SILENT = {
    "typo": "ns=2;s=KilnLine1.KilnFeed_tphh",  # a node the server lacks
    "other_ns": "nsu=urn:other:plant;s=KilnLine1.KilnFeed_tph",  # a namespace the server lacks
    "fan": NSU + "IDFan_kW",  # the DCS marks it BadSensorFailure
}


@pytest.fixture(autouse=True)
def quiet_asyncua() -> Iterator[None]:
    logger = logging.getLogger("asyncua")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def write_config(path: Path, port: int, points: dict[str, str]) -> Path:
    text = CONFIG.format(broker=free_port(), port=port)
    path.write_text(text + "".join(POINT.format(name=n, node=node) for n, node in points.items()))
    return path


async def check_probe(config: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli", "agent", "check", str(config), "--probe",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


def test_check_probe_lists_the_nodes_the_server_lacks_or_marks_bad_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    mixed = write_config(tmp_path / "mixed.toml", port, {**ANSWERING, **SILENT})
    good = write_config(tmp_path / "good.toml", port, ANSWERING)

    async def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        dcs = await DcsServer.start(port, KilnLine(seed=2).rates)
        try:
            await dcs.set_status("IDFan_kW", "BadSensorFailure", 1_795_161_600_000)
            return await check_probe(mixed), await check_probe(good)
        finally:
            await dcs.stop()

    (code, out), (good_code, good_out) = asyncio.run(scenario())
    assert code == 1, out
    assert "probe opcua dcs: 2 of 5 points answered\n" in out, out
    assert f"  typo: {SILENT['typo']}: BadNodeIdUnknown\n" in out
    assert f"  other_ns: {SILENT['other_ns']}: namespace not on the server\n" in out
    assert f"  fan: {SILENT['fan']}: BadSensorFailure\n" in out
    for name in ANSWERING:  # listed with the value read, after the unanswered ones
        value = re.search(rf"^  {name} = (\S+)$", out, re.M)
        assert value is not None and float(value.group(1)) > 0, out
        assert out.index(f"  {name} = ") > out.index("  fan: ")
    assert good_code == 0, good_out
    assert "probe opcua dcs: 2 of 2 points answered\n" in good_out, good_out


def test_check_probe_reports_every_point_unanswered_when_the_server_is_down(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agent.toml", free_port(), ANSWERING)
    code, out = asyncio.run(check_probe(config))
    assert code == 1, out
    assert "probe opcua dcs: 0 of 2 points answered\n" in out, out
    for name in ANSWERING:
        assert f"  {name}: no session: ConnectionRefusedError" in out, out
