"""``hub metrics --from DATE --to DATE [--interval day|week|month] [--json]``."""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from typing import Any

import click

from hub.runtime import current


@click.group(invoke_without_command=True)
@click.option("--from", "start", metavar="DATE", help="First day (YYYY-MM-DD). Default: 12 months ago.")
@click.option("--to", "end", metavar="DATE", help="Last day, included (YYYY-MM-DD). Default: today.")
@click.option("--interval", type=click.Choice(["day", "week", "month"]), default="month", show_default=True,
              help="One row per day, week or month.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per period, one a line.")
@click.pass_context
def metrics(ctx: click.Context, start: str | None, end: str | None, interval: str, as_json: bool) -> None:
    """Subscription KPIs: MRR, churn, NRR, ARPA, CLV, dunning.

    MRR/ARR and movements, churn, NRR, net MRR churn, ARPA, CLV, trials and dunning per period;
    `hub metrics cohorts`: retention by first-payment month."""
    if ctx.invoked_subcommand is not None:
        return
    from hub import kpis as m

    hub = current()
    try:
        last = m.parse_date(end) if end else date.today()
        first = m.parse_date(start) if start else (last.replace(day=1) - timedelta(days=335)).replace(day=1)
        with hub.store.session() as session:
            report = m.report(session, first, last, interval, m.Rates.from_settings(hub.settings))
    except m.MetricsError as exc:
        click.echo(f"hub metrics: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))  # one object, one line
        return
    blocks = {report["currency"]: report["periods"]} if "currency" in report else report["per_currency"]
    for currency, periods in blocks.items():
        click.echo(f"KPIs in {currency} (money in minor units), {report['from']} .. {report['to']} by {interval}")
        _table(periods)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(periods: list[dict[str, Any]]) -> None:
    columns = [("period", lambda p: p["start"]), ("MRR", lambda p: p["mrr"]), ("ARR", lambda p: p["arr"]),
               ("new", lambda p: p["movements"]["new"]), ("expans.", lambda p: p["movements"]["expansion"]),
               ("contr.", lambda p: p["movements"]["contraction"]), ("churn", lambda p: p["movements"]["churn"]),
               ("react.", lambda p: p["movements"]["reactivation"]), ("active", lambda p: p["active"]),
               ("+subs", lambda p: p["new_subscribers"]), ("-subs", lambda p: p["churned_subscribers"]),
               ("cust.churn", lambda p: _pct(p["customer_churn_rate"])),
               ("rev.churn", lambda p: _pct(p["revenue_churn_rate"])),
               ("NRR", lambda p: _pct(p["net_revenue_retention"])),
               ("net churn", lambda p: _pct(p["net_mrr_churn_rate"])), ("ARPA", lambda p: p["arpa"] or "-"),
               ("CLV", lambda p: p["clv"] or "-"), ("growth", lambda p: _pct(p["new_member_growth_rate"])),
               ("trial conv.", lambda p: _pct(p["trial_conversion_rate"])),
               ("dunning rec.", lambda p: _pct(p["dunning_recovery_rate"])),
               ("recovered", lambda p: p["recovered_revenue"])]
    table = [[name for name, _ in columns]] + [[str(f(p)) for _, f in columns] for p in periods]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for row in table:
        click.echo("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


@metrics.command()
@click.option("--from", "start", metavar="MONTH", help="First cohort month (YYYY-MM or a day in it). Default: 12 months ago.")
@click.option("--to", "end", metavar="MONTH", help="Last month observed (YYYY-MM or a day in it). Default: this month.")
@click.option("--by", type=click.Choice(["month", "plan"]), default="month", show_default=True,
              help="Cohorts by first-payment month, or by month and the plan of the first subscription.")
@click.option("--json", "as_json", is_flag=True, help="The table as one JSON object.")
def cohorts(start: str | None, end: str | None, by: str, as_json: bool) -> None:
    """Retention by first-payment month.

    Of the subscribers who first paid in a month, how many still pay at the end of each month since."""
    from marshmallow import ValidationError

    from hub.kpis import cohorts as c

    params = {k: (v + "-01" if v and len(v) == 7 else v) for k, v in (("from", start), ("to", end)) if v}
    try:
        args = c.CohortParams().load({**params, "by": by})
    except ValidationError as exc:
        name, messages = next(iter(exc.normalized_messages().items()))
        raise click.BadParameter("; ".join(map(str, messages)), param_hint=f"--{name}")
    last = args["end"] or date.today()
    first = args["start"] or (last.replace(day=1) - timedelta(days=335)).replace(day=1)
    with current().store.session() as session:
        table = c.cohorts(session, first, last, args["by"])
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    click.echo(f"Retention by first-payment month{' and plan' if by == 'plan' else ''}, "
               f"{table['from']} .. {table['to']} (subscribers paying at each month's end)")
    head = ["cohort"] + (["plan"] if by == "plan" else []) + ["size"]
    width = max([0] + [len(r["retained"]) for r in table["cohorts"]])
    rows = [head + [f"+{i}" for i in range(width)]]
    for r in table["cohorts"]:
        rows.append([r["cohort"]] + ([r["plan"]] if by == "plan" else []) + [str(r["size"])]
                    + [f"{n} {p * 100:.0f}%" for n, p in zip(r["retained"], r["retention"])])
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.rjust(w) for cell, w in zip(row, widths)).rstrip())


COMMANDS = [metrics]
