"""``kilnwatch sim ...`` commands (placeholder until the simulator lands)."""

import typer

sim_app = typer.Typer(help="Simulated plants (Modbus meters, OPC UA DCS) with ground truth.", no_args_is_help=True)
