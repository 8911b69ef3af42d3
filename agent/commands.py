"""``kilnwatch agent ...`` commands (placeholder until the agent lands)."""

import typer

agent_app = typer.Typer(
    help="Edge agent: poll Modbus / OPC UA sources and publish over MQTT.", no_args_is_help=True
)
