"""`agentfactory usage`: what this machine's model calls spent, by day, model and agent.

Reads the local ledger (`$AGENTFACTORY_HOME/usage.db`, written by prompt agents run with
`agentfactory run`); a machine that never called a model has no ledger and spent nothing. The
marketplace's own accounting for an account is `GET /api/v1/usage` (docs/models.md).
"""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True,
              help="How many days back, today included (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def usage(days: int, as_json: bool) -> None:
    """Show the tokens and cost of model calls, by day, model and agent."""
    from core.paths import agentfactory_home
    from models.gateway import LOCAL_LEDGER
    from models.ledger import MemoryLedger, SpendLedger
    from models.report import usage_report
    from models.types import LOCAL_ACCOUNT

    path = agentfactory_home() / LOCAL_LEDGER
    ledger: SpendLedger
    if path.is_file():
        from models.ledger_sql import SqlLedger

        ledger = SqlLedger.local(path)
    else:
        ledger = MemoryLedger()  # nothing spent yet: an empty report, and no file created
    report = usage_report(ledger, LOCAL_ACCOUNT, days)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    if not report.rows:
        click.echo(f"no model calls since {report.since:%Y-%m-%d}")
        return
    from cli.output import show, table

    grid = table("day", "model", "agent", "calls", "input tokens", "output tokens", "cost (USD)")
    for row in report.rows:
        grid.add_row(row.day.isoformat(), row.model, row.agent, str(row.calls),
                     f"{row.input_tokens:,}", f"{row.output_tokens:,}", f"{row.cost:.6f}")
    totals = report.totals
    grid.add_row("total", "", "", str(totals["calls"]), f"{totals['input_tokens']:,}",
                 f"{totals['output_tokens']:,}", f"{totals['cost']:.6f}")
    show(grid)
