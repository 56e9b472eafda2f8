"""The flags of ``structbench run``: declared once, shown in sections, turned into RunFlags.

The sections follow ``vllm bench serve``'s habits (endpoint, dataset/task, load, output),
and so do the names where that tool has one (``--base-url``, ``--request-rate``,
``--max-concurrency``, ``--num-prompts``, ``--save-result``, ``--metric-percentiles``).
Only click and the standard library are imported here: ``structbench --help`` stays light.
Bad values end in one line on stderr and exit code 2, like every other user error.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from structbench.errors import UserError

if TYPE_CHECKING:
    from structbench.cells import Executor
    from structbench.spec.adhoc import RunFlags

F = TypeVar("F", bound=Callable[..., Any])

#: Help sections in order, each with its options' parameter names.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Endpoint",
        (
            *("engines", "base_url", "model", "api", "api_key_env"),
            *("launch", "server_python", "server_args", "server_env"),
        ),
    ),
    ("Dataset / task", ("tasks", "num_requests", "seed")),
    (
        "Load",
        ("concurrency", "request_rate", "max_concurrency", "burstiness", "warmup", "reset_cache", "goodput"),
    ),
    ("Output", ("results_dir", "save_result", "metric_percentiles", "percentile_metrics", "progress")),
    ("Gate (exit 3)", ("fail_under", "fail_on_canary")),
    ("Run", ("resume_dir", "executor", "address")),
)
_GOODPUT_KEYS = ("ttft", "tpot", "e2el")
PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")


class SectionedCommand(click.Command):
    """A command whose options are listed under headings, and whose usage errors are one line."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the options section by section (those in no section go last)."""
        rows = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx) if isinstance(p, click.Option)}
        placed: set[str | None] = set()
        for title, names in (*SECTIONS, ("Other", tuple(n for n in rows if n is not None))):
            records = [r for n in names if n not in placed and (r := rows.get(n)) is not None]
            placed.update(names)
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse, turning click's several-line usage error into ``error: ...`` and exit 2."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            click.echo(f"error: {' '.join(e.format_message().split())}", err=True)
            sys.exit(2)


if TYPE_CHECKING:
    _NumbersType = click.ParamType[tuple[float, ...]]
else:  # click's ParamType is generic only to type checkers in some versions
    _NumbersType = click.ParamType


class _CommaList(_NumbersType):
    """``1,8,64`` -> a tuple of numbers (``inf`` allowed where ``allow_inf``)."""

    def __init__(
        self, kind: type[int] | type[float], *, allow_inf: bool = False, upper: float = math.inf
    ) -> None:
        self.kind, self.allow_inf, self.upper = kind, allow_inf, upper
        self.name = f"{kind.__name__}[,{kind.__name__}...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(self.kind(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"'{value}' is not a comma-separated list of {self.kind.__name__}s", param, ctx)
        if not out or any(not 0 < v <= self.upper or (math.isinf(v) and not self.allow_inf) for v in out):
            bound = "> 0" + (f" and <= {self.upper:g}" if math.isfinite(self.upper) else "")
            bound += " or inf" if self.allow_inf else ""
            self.fail(f"'{value}': every value must be {bound}", param, ctx)
        return out


def _goodput(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    for pair in value:
        key, _, ms = pair.partition(":")
        try:
            limit = float(ms)
        except ValueError:
            limit = -1.0
        if key not in _GOODPUT_KEYS or not limit >= 0:
            raise click.BadParameter(f"'{pair}': use KEY:MS with KEY one of {', '.join(_GOODPUT_KEYS)}")
        out.append((key, limit))
    return tuple(out)


def _env_pairs(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    out = []
    for pair in value:
        key, eq, val = pair.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"'{pair}': use KEY=VALUE")
        out.append((key, val))
    return tuple(out)


def _metric_names(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in PERCENTILE_METRICS]
    if bad or not names:
        raise click.BadParameter(f"'{value}': use names from {','.join(PERCENTILE_METRICS)}")
    return names


_PATH = click.Path(path_type=Path)
#: The ``--save-result`` options, shared by ``run`` and ``report``.
SAVE_RESULT_OPTIONS: tuple[Callable[[F], F], ...] = (
    click.option(
        "--save-result", is_flag=True, default=False, help="Also write vllm bench serve's JSON for each cell."
    ),
    click.option(
        "--metric-percentiles",
        type=_CommaList(float, upper=100.0),
        default="99",
        show_default=True,
        help="Percentiles in the --save-result files.",
    ),
    click.option(
        "--percentile-metrics",
        callback=_metric_names,
        default=",".join(PERCENTILE_METRICS),
        show_default=True,
        help="Metrics given percentiles in the --save-result files.",
    ),
)
_OPTIONS: tuple[Callable[[F], F], ...] = (
    # Endpoint
    click.option(
        "--engine",
        "engines",
        multiple=True,
        help="Engine kind for an ad-hoc run (vllm, sglang, openai, embedded); with a suite, the engine "
        "name (or kind) to run (repeatable).",
    ),
    click.option("--base-url", help="Attach to a running server (http://host:port)."),
    click.option("--model", help="Served model name; with --launch, the checkpoint the server loads."),
    click.option("--api", type=click.Choice(["chat", "completions"]), help="OpenAI-compatible API to call."),
    click.option("--api-key-env", help="Environment variable holding the API key (never the key)."),
    click.option(
        "--launch", is_flag=True, default=False, help="Start the server (with --model) and stop it."
    ),
    click.option("--server-python", help="With --launch: the interpreter that has the engine installed."),
    click.option("--server-args", help="With --launch: extra server flags, one shell-quoted string."),
    click.option(
        "--server-env", multiple=True, callback=_env_pairs, help="With --launch: KEY=VALUE (repeatable)."
    ),
    # Dataset / task
    click.option("--task", "tasks", multiple=True, type=_PATH, help="Task YAML to run (repeatable)."),
    click.option(
        "-n",
        "--num-requests",
        "--num-prompts",
        type=click.IntRange(min=1),
        help="Work items per task (overrides the suite).",
    ),
    click.option("--seed", type=int, help="Seed (overrides the suite)."),
    # Load
    click.option(
        "--concurrency",
        type=_CommaList(int),
        help="Closed-loop concurrency sweep, e.g. 1,8,64 (one cell each).",
    ),
    click.option(
        "--request-rate",
        type=_CommaList(float, allow_inf=True),
        help="Open-loop rate sweep in req/s, e.g. 1,4,inf.",
    ),
    click.option(
        "--max-concurrency", type=click.IntRange(min=1), help="Cap on requests in flight (--request-rate)."
    ),
    click.option(
        "--burstiness", type=click.FloatRange(min=0, min_open=True), help="Gamma arrivals (1 = Poisson)."
    ),
    click.option("--warmup", "--num-warmups", type=click.IntRange(min=0), help="Warm-up items per cell."),
    click.option(
        "--reset-cache/--no-reset-cache", default=None, help="Flush the prefix cache before each cell."
    ),
    click.option(
        "--goodput",
        multiple=True,
        callback=_goodput,
        help="SLO as KEY:MS, KEY in ttft/tpot/e2el (repeatable).",
    ),
    # Output
    click.option(
        "--results-dir",
        "--result-dir",
        type=_PATH,
        default=Path("results"),
        show_default=True,
        help="Results root.",
    ),
    *SAVE_RESULT_OPTIONS,
    click.option("--progress/--no-progress", default=True, show_default=True),
    # Run
    click.option(
        "--resume",
        "resume_dir",
        type=click.Path(path_type=Path, exists=True, file_okay=False),
        help="Finish RUN_DIR instead: re-run only its unfinished cells and items, then rebuild its report.",
    ),
    click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="local: cells in turn in this process; ray: each cell a Ray task (needs structbench[ray]).",
    ),
    click.option("--address", help="With --executor ray: the cluster to join (e.g. 10.0.0.1:6379, or auto)."),
)


def run_options(fn: F) -> F:
    """Apply every ``run`` option to ``fn`` (in declaration order in ``--help``)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def save_result_options(fn: F) -> F:
    """Apply the ``--save-result`` options to ``fn`` (for ``report``)."""
    for option in reversed(SAVE_RESULT_OPTIONS):
        fn = option(fn)
    return fn


def flags_from(opts: dict[str, Any]) -> RunFlags:
    """The suite-shaping flags among ``run``'s parsed options."""
    from structbench.spec.adhoc import EndpointFlags, LoadFlags, RunFlags

    try:
        server_args = tuple(shlex.split(opts["server_args"] or ""))
    except ValueError as e:
        raise UserError(f"--server-args: {e}") from None
    endpoint = EndpointFlags(
        engines=tuple(opts["engines"]),
        base_url=opts["base_url"],
        model=opts["model"],
        launch=opts["launch"],
        server_python=opts["server_python"],
        server_args=server_args,
        server_env=opts["server_env"],
        api=opts["api"],
        api_key_env=opts["api_key_env"],
    )
    load = LoadFlags(
        concurrency=opts["concurrency"],
        request_rate=opts["request_rate"],
        max_concurrency=opts["max_concurrency"],
        burstiness=opts["burstiness"],
        warmup=opts["warmup"],
        reset_cache=opts["reset_cache"],
        goodput=opts["goodput"],
    )
    return RunFlags(endpoint=endpoint, tasks=tuple(opts["tasks"]), load=load, seed=opts["seed"])


def check_engine_kinds(suite: Path | None, engines: Sequence[str]) -> None:
    """Refuse an unknown ``--engine`` kind at once, before tasks and libraries load (seconds).

    Without a suite file, or with a task file, ``--engine`` names an engine kind; with a
    suite it names one of the suite's engines, which only loading the suite can tell.

    Raises:
        UserError: The one kind given is not registered.
    """
    if len(engines) != 1 or (suite is not None and not _is_task_file(suite)):
        return
    from structbench.engines.registry import engine_kinds  # spec classes only: no engine module

    known = engine_kinds()
    if engines[0] not in known:
        raise UserError(f"--engine: unknown engine kind '{engines[0]}' (known: {', '.join(known)})")


def _is_task_file(path: Path) -> bool:
    """A task has a top-level ``kind``; anything unreadable is left to the loader to report."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "kind" in data


def executor_from(opts: dict[str, Any]) -> Executor:
    """``--executor`` and ``--address`` as an Executor (``--address`` needs ``--executor ray``)."""
    from structbench.cells import Executor

    if opts["address"] is not None and opts["executor"] != "ray":
        raise UserError("--address needs --executor ray")
    return Executor(opts["executor"], opts["address"])


def given_flags(ctx: click.Context) -> list[str]:
    """The options the user typed (not defaults), as ``--flag`` names, for ``--resume`` checks."""
    out = []
    for p in ctx.command.params:
        source = ctx.get_parameter_source(p.name) if p.name else None
        if source is click.core.ParameterSource.COMMANDLINE and isinstance(p, click.Option):
            out.append(max(p.opts, key=len))
    return out
