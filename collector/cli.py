"""``kilnwatch collector|kpi|demo`` commands (placeholder)."""

import typer

collector_app = typer.Typer(help="Central collector.", no_args_is_help=True)
kpi_app = typer.Typer(help="Offline KPI computation.", no_args_is_help=True)


def demo() -> None:
    """Run the demo plant end to end."""
