"""``rafale compare``: parse the sides and options, call ``rafale.compare``, print the
table (rich) and the --fail-if verdicts. No Ray, no pycurl."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from rafale.cluster.cli.common import EXIT_BAD_INPUT, EXIT_THRESHOLDS, fail

RunsArgument = Annotated[list[str] | None, typer.Argument(
    metavar="BASE CAND [CAND...]", show_default=False,
    help="Result directories: the base run, then one or more candidates; or several runs "
         "a side: --base A1 A2 A3 --cand B1 B2 B3 (each --cand starts another candidate).")]
MinEffect = Annotated[str, typer.Option(
    "--min-effect", metavar="PCT",
    help="A smaller change (relative to the base) is never called better or worse, e.g. "
         "5% or 0.05.")]
Seed = Annotated[int | None, typer.Option(
    "--seed", metavar="N", show_default=False,
    help="The bootstrap's seed (printed; give it again to get the same intervals).")]
Resamples = Annotated[int, typer.Option(
    "--resamples", metavar="N", help="Bootstrap resamples.")]
FailIfOption = Annotated[list[str] | None, typer.Option(
    "--fail-if", metavar="EXPR", show_default=False,
    help="Exit 99 when a metric changed significantly past a limit: p99>+10%, "
         "error_rate>+0.5pp, rate<-2%, p99\\[tag=api]>+20ms (repeat for several).")]
HtmlOption = Annotated[bool, typer.Option(
    "--html", help="Also write compare.html (self-contained: the table and the charts) "
                   "in the current directory.")]
AllowDifferent = Annotated[bool, typer.Option(
    "--allow-different", help="Compare runs of different targets (origins) anyway.")]


def split_sides(tokens: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(base runs, candidates' runs) from ``BASE CAND [CAND...]`` or ``--base A1 A2
    --cand B1 B2 [--cand C1 C2]``; ValueError naming what is wrong."""
    items = list(tokens)
    if not any(t in ("--base", "--cand") for t in items):
        unknown = [t for t in items if t.startswith("-")]
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r}; see rafale compare --help")
        if len(items) < 2:
            raise ValueError(f"expected BASE CAND [CAND...] (two result directories or "
                             f"more), got {len(items)}")
        return [items[0]], [[c] for c in items[1:]]
    if items[0] != "--base":
        raise ValueError(f"with --base and --cand, start with --base (got {items[0]!r})")
    groups: list[list[str]] = []
    for token in items:
        if token in ("--base", "--cand"):
            if token == "--base" and groups:
                raise ValueError("--base is given once; use --cand for each candidate")
            groups.append([])
        elif token.startswith("-"):
            raise ValueError(f"unknown option {token!r}; see rafale compare --help")
        else:
            groups[-1].append(token)
    if len(groups) < 2 or any(not g for g in groups):
        raise ValueError("expected --base RUN [RUN...] --cand RUN [RUN...]: each side needs "
                         "at least one result directory")
    return groups[0], groups[1:]


def parse_min_effect(text: str) -> float:
    """'5%' or '0.05' -> 0.05; ValueError naming the value otherwise."""
    raw = text.strip()
    try:
        amount = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        amount = -1.0
    if not 0 <= amount < 1 or (not raw.endswith("%") and amount >= 1):
        raise ValueError(f"--min-effect {text!r}: expected a percentage such as 5% or a "
                         "fraction such as 0.05 (0 <= effect < 100%)")
    return amount


def _print_table(table: object) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from rafale.analysis.verdict.text import SIDES_COLUMNS, cells, notes

    assert hasattr(table, "attrs")
    width = None if sys.stdout.isatty() else max(140, shutil.get_terminal_size().columns)
    console = Console(width=width, highlight=False)
    rows = cells(table)  # type: ignore[arg-type]
    several = any(r["candidate"] for r in rows)
    drawn = Table(show_edge=False, pad_edge=False)
    for column in (("candidate",) if several else ()) + SIDES_COLUMNS:
        drawn.add_column(column, justify="left" if column in ("metric", "verdict",
                                                              "candidate") else "right")
    colours = {"worse": "red", "better": "green", "changed": "yellow"}
    for row in rows:
        style = colours.get(row["verdict"].split(":")[0], "")
        drawn.add_row(*((row["candidate"],) if several else ()),
                      *(escape(row[c]) for c in SIDES_COLUMNS), style=style)
    console.print(drawn)
    for line in notes(table.attrs):
        console.print(escape(line), soft_wrap=True)


def compare_command(runs: RunsArgument = None, min_effect: MinEffect = "5%",
                    seed: Seed = None, resamples: Resamples = 1000,
                    fail_if: FailIfOption = None, html: HtmlOption = False,
                    allow_different: AllowDifferent = False) -> None:
    """Compare runs and say what changed: per metric, the change, its bootstrap interval
    and a verdict (better, worse, no significant change, not comparable)."""
    from rafale.analysis.verdict import Options, compare_sides, side_series
    from rafale.analysis.verdict.fail_if import check_all
    from rafale.cluster.threshold_syntax import parse_fail_ifs

    try:
        base, candidates = split_sides(runs or [])
        effect = parse_min_effect(min_effect)
        conditions = parse_fail_ifs(fail_if)
        options = Options(effect, resamples=resamples, seed=seed,
                          allow_different=allow_different)
        base_side = side_series(base)
        cand_sides = [side_series(c) for c in candidates]
        table = compare_sides(base_side, cand_sides, options)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    _print_table(table)
    results = check_all(conditions, table)
    for result in results:
        state = "FAILED" if result["failed"] else "passed"
        where = f" ({result['candidate']})" if result["candidate"] else ""
        typer.echo(f"fail-if {result['fail_if']}{where}: {state} ({result['verdict']}, "
                   f"change {result['shown']})")
    if html:
        from rafale.analysis.verdict.page import COMPARE_FILE, write_compare_html

        written = write_compare_html(COMPARE_FILE, table, base_side, cand_sides, results)
        typer.echo(f"wrote {written}")
    if any(r["failed"] for r in results):
        raise typer.Exit(EXIT_THRESHOLDS)
