"""The ``structbench`` command. Each command is a few lines around one library call.

Library modules are imported inside the commands so ``--help`` and ``validate`` stay
light (no torch, transformers, sglang or vllm; a test checks this).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from structbench import __version__
from structbench.cli_run import (
    SectionedCommand,
    check_engine_kinds,
    executor_from,
    flags_from,
    given_flags,
    run_options,
    save_result_options,
)
from structbench.errors import UserError

if TYPE_CHECKING:
    from structbench.metrics import RunSummary

F = TypeVar("F", bound=Callable[..., Any])
#: Exit code of a failed ``--fail-under`` / ``--fail-on-canary`` gate; equal to
#: ``structbench.metrics.gate.GATE_EXIT_CODE`` (a test checks), kept here so that
#: ``--help`` imports no metrics.
_GATE_EXIT_CODE = 3


def _user_errors(fn: F) -> F:
    """Print a UserError as one line on stderr and exit 2 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


def _gate_options(fn: F) -> F:
    """``--fail-under NAME=VALUE`` (repeatable) and ``--fail-on-canary``, for run and report."""
    fn = click.option(
        "--fail-on-canary",
        is_flag=True,
        help="Exit 3 when a canary task's constraint was not applied (or it has no completed outputs).",
    )(fn)
    return click.option(
        "--fail-under",
        "fail_under",
        multiple=True,
        metavar="NAME=VALUE",
        help="Exit 3 when a rate is below VALUE (0..1 or N%) in any cell: validity, accuracy, a scorer "
        "name, or declared/empirical/compliance coverage. Repeatable.",
    )(fn)


def _gate(summary: RunSummary, fail_under: tuple[str, ...], fail_on_canary: bool) -> bool:
    """Check the gate; print why it failed (stderr). True when it passed or none was asked."""
    if not fail_under and not fail_on_canary:
        return True
    from structbench.metrics.gate import check_gate, parse_threshold

    result = check_gate(summary, [parse_threshold(t) for t in fail_under], fail_on_canary)
    for line in result.failures:
        click.echo(f"gate failed: {line}", err=True)
    return result.passed


def _check_thresholds(fail_under: tuple[str, ...]) -> None:
    """Parse the thresholds before any work, so a typo costs nothing (exit 2)."""
    from structbench.metrics.gate import parse_threshold

    for t in fail_under:
        parse_threshold(t)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="structbench")
def main() -> None:
    """Structured-generation benchmarks for LLM inference engines."""


#: Flags that make sense with --resume (the rest come from the run's own suite and manifest).
_RESUME_OK = (
    *("--resume", "--progress", "--results-dir"),
    *("--save-result", "--metric-percentiles", "--percentile-metrics"),
    *("--fail-under", "--fail-on-canary"),
    *("--executor", "--address"),
)


@main.command(cls=SectionedCommand)
@click.argument("suite", type=click.Path(path_type=Path), required=False)
@run_options
@_gate_options
@_user_errors
def run(suite: Path | None, **opts: Any) -> None:
    """Run SUITE (a suite or task YAML), or the --task files, and write results/<suite>/<UTC time>_<id>/.

    Without a suite file the flags make one: for example
    `structbench run --engine vllm --base-url http://127.0.0.1:8000 --task tasks/json/invoice.yaml
    --concurrency 1,8,64 -n 200`. With one, they override its fields.
    """
    fail_under: tuple[str, ...] = opts["fail_under"]
    fail_on_canary: bool = opts["fail_on_canary"]
    if opts["resume_dir"] is None:
        check_engine_kinds(suite, opts["engines"])  # first: a typo costs well under a second
    _check_thresholds(fail_under)

    executor = executor_from(opts)
    if opts["resume_dir"] is not None:
        given = [f for f in given_flags(click.get_current_context()) if f not in _RESUME_OK]
        if suite is not None or given:
            got = ", ".join(([str(suite)] if suite is not None else []) + given)
            raise UserError(
                f"--resume takes the suite and its flags from the run; give none of them (got {got})"
            )
        from structbench.resume import resume_run

        out = resume_run(opts["resume_dir"], opts["progress"], executor)
    else:
        from structbench.run import RunOptions, run_suite

        flags = flags_from(opts)
        out = run_suite(
            RunOptions(
                suite,
                opts["results_dir"],
                opts["num_requests"],
                opts["seed"],
                (),
                opts["progress"],
                flags,
                executor,
                on_run_dir=lambda d: click.echo(f"results: {d}"),
                warn=lambda line: click.echo(f"warning: {line}", err=True),
            )
        )
    if opts["save_result"]:
        _save_results(out.run_dir, out.summary, opts)
    from rich.console import Console

    from structbench.report.terminal import render_terminal_table

    Console().print(render_terminal_table(out.summary))
    click.echo(f"results: {out.run_dir}")
    if out.interrupted:
        click.echo("run interrupted: finished records are kept", err=True)
        sys.exit(130)
    gate_passed = _gate(out.summary, fail_under, fail_on_canary)
    if out.failed_cells:
        click.echo(f"cells with failures: {', '.join(out.failed_cells)}", err=True)
    if not gate_passed:
        sys.exit(_GATE_EXIT_CODE)
    if out.failed_cells:
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@_user_errors
def validate(path: Path) -> None:
    """Check a suite (or task) YAML and everything it references, without running it."""
    from structbench.spec.loader import LoadedSuite, load_path

    what = load_path(path)
    for line in what.warnings if isinstance(what, LoadedSuite) else ():
        click.echo(f"warning: {line}", err=True)
    click.echo(f"ok: {what}")


if TYPE_CHECKING:
    _StrChoice = click.Choice[str]
else:  # click < 8.2 has no generic Choice to subscript at runtime
    _StrChoice = click.Choice


class _EngineKind(_StrChoice):
    """The registered engine kinds, read when used: plugins register after this module loads."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        """The kinds registered now."""
        # Imported here: the registry pulls in pydantic, which --help does not need.
        from structbench.engines.registry import engine_kinds

        return engine_kinds()

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """Ignored: click's ``__init__`` assigns the (empty) static list."""


@main.command(name="compile")
@click.option("--engine", "engine_kind", required=True, type=_EngineKind())
@click.option("-n", "--num-items", type=int, default=1, show_default=True)
@click.argument("task", type=click.Path(path_type=Path))
@_user_errors
def compile_cmd(engine_kind: str, num_items: int, task: Path) -> None:
    """Print the engine-native form of TASK's first items (no engine is started)."""
    from structbench.compile import compile_task

    click.echo(compile_task(task, engine_kind, num_items))


def _save_results(run_dir: Path, summary: RunSummary, opts: dict[str, Any]) -> None:
    """Write the ``vllm bench serve --save-result`` file of every cell."""
    from structbench.report.vllm_result import VllmResultOptions, write_vllm_results

    pct = VllmResultOptions(opts["metric_percentiles"], opts["percentile_metrics"])
    for path in write_vllm_results(run_dir, summary, pct):
        click.echo(f"wrote {path}")


@main.command(cls=SectionedCommand)
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@save_result_options
@_gate_options
@_user_errors
def report(run_dir: Path, **opts: Any) -> None:
    """Rebuild scores, summary.json, report.md and report.html from RUN_DIR's records."""
    from structbench.report.build import build_report

    _check_thresholds(opts["fail_under"])
    summary = build_report(run_dir)
    click.echo(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.html'}")
    if opts["save_result"]:
        _save_results(run_dir, summary, opts)
    if not _gate(summary, opts["fail_under"], opts["fail_on_canary"]):
        sys.exit(_GATE_EXIT_CODE)


@main.command()
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False)
)
@click.option(
    "--map",
    "engine_map",
    multiple=True,
    metavar="OLD=NEW",
    help="Rename an engine in every run before matching cells (e.g. vllm-cpu=vllm). Repeatable.",
)
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--engine", "engines", multiple=True, help="Only this engine, named after --map (repeatable).")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Only this metric, a summary.json name such as p99_ttft_ms or validity (repeatable).",
)
@_user_errors
def compare(
    run_dirs: tuple[Path, ...],
    engine_map: tuple[str, ...],
    tasks: tuple[str, ...],
    engines: tuple[str, ...],
    metrics: tuple[str, ...],
) -> None:
    """Put several runs side by side (deltas against the first; ≈ marks a delta inside the noise)."""
    from structbench.report.compare import CompareOptions, compare_runs

    pairs = []
    for pair in engine_map:
        old, eq, new = pair.partition("=")
        if not eq or not old or not new:
            raise UserError(f"--map: '{pair}': use OLD=NEW (e.g. vllm-cpu=vllm)")
        pairs.append((old, new))
    names = tuple(n.strip() for m in metrics for n in m.split(",") if n.strip())
    opts = CompareOptions(tuple(pairs), tasks, engines, names)
    click.echo(compare_runs(list(run_dirs), opts))


@main.command()
def fields() -> None:
    """Print the field reference of suite and task files (markdown, from the spec models)."""
    from structbench.spec.reference import field_reference

    click.echo(field_reference(), nl=False)


@main.command()
def scorers() -> None:
    """List the scorer names a task may use."""
    from structbench.scoring.registry import SCORER_NAMES

    for name in sorted(SCORER_NAMES):
        click.echo(name)


if __name__ == "__main__":
    main()
