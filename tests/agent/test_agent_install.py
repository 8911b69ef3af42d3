"""A gateway's install: ``pip install 'kilnwatch[agent]'`` in a fresh virtual environment gives a working
``kilnwatch agent ...`` that never imports numba, numpy, the InfluxDB client or the collector.

Gateways are small ARM boxes with slow flash: numba alone is ~40 MB and seconds of import time, and a
collector dependency that leaked into the agent's import path would make the agent fail to start on a
gateway that (rightly) does not have it. Only a fresh environment proves this: the dev environment has
everything installed, so an accidental import would pass there.
"""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "numpy", "influxdb_client", "collector", "simulators", "kpi", "pyarrow", "amqtt")

#: Runs inside the fresh venv: the agent's commands and every module an agent run loads, then reports.
PROBE = """
import importlib, json, sys
from agent.cli import main
from agent.sources.registry import SOURCES
sys.argv = ["kilnwatch", "agent", "check", sys.argv[1]]
try:
    main()
except SystemExit as exc:
    status = exc.code
for name in ["agent.runner", "agent.publisher", "agent.outbox", "agent.health"]:
    importlib.import_module(name)
for source in SOURCES:
    for part in ("poller", "probe"):
        importlib.import_module(f"agent.sources.{source.key}.{part}")
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("agent-venv")
    venv.EnvBuilder(with_pip=True).create(folder)
    python = folder / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{ROOT}[agent]"],
        check=True,
        timeout=900,
        cwd=folder,  # not the checkout: the installed package must be what is imported
    )
    return folder


@pytest.mark.slow
def test_agent_extra_installs_an_agent_that_never_imports_the_collector_stack(agent_venv: Path) -> None:
    python = agent_venv / "bin" / "python"
    config = ROOT / "agent" / "sources" / "modbus" / "example.toml"
    out = subprocess.run(
        [str(python), "-c", PROBE, str(config)], capture_output=True, text=True, timeout=120, cwd=agent_venv
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] in (0, None), out.stdout
    assert "config OK" in out.stdout
    leaked = [m for m in report["modules"] if m.split(".")[0] in HEAVY]
    assert leaked == [], f"the agent imported {leaked}"
    assert "agent.sources.modbus.poller" in report["modules"]  # the probe did load the agent's code

    # The heavy packages are not merely unimported but absent, so an import would have failed for real.
    absent = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print([m for m in ('numba', 'influxdb_client') "
         "if u.find_spec(m)])"], capture_output=True, text=True, timeout=60, cwd=agent_venv,
    )  # fmt: skip
    assert absent.stdout.strip() == "[]"

    # The installed entry point works from the gateway's shell, not only through python -c.
    help_text = subprocess.run(
        [str(agent_venv / "bin" / "kilnwatch"), "agent", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "probe" in help_text.stdout, help_text.stderr
