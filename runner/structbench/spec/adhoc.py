"""Suites from command-line flags: ad-hoc runs, and flags that override a suite's fields.

``structbench run --engine vllm --base-url URL --task tasks/json/invoice.yaml --concurrency 1,8``
needs no suite file: the flags are turned into the same data a suite YAML holds and
validated by the same pydantic model (:func:`~structbench.spec.suite.suite_model`), so
everything after loading is unchanged. Given a suite, the same flags replace its fields;
given a task file where a suite is expected, the task runs as a one-task suite.

Engine flags are applied by field name (``url``, ``launch``, ``model``, ...), asking the
engine's spec class which fields it has, so that a plugin's engine takes them too and no
kind is special-cased here. Errors name the flag, never a traceback.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from structbench.engines.registry import engine_kinds, spec_class
from structbench.errors import UserError
from structbench.spec.loaded import LoadedSuite, LoadedTask
from structbench.spec.loader import ENV_NAME, load_suite, load_tasks, read_doc
from structbench.spec.paths import display_path
from structbench.spec.suite import SuiteSpec, suite_model

__all__ = ["ADHOC_SUITE_FILE", "EndpointFlags", "LoadFlags", "RunFlags", "SuitePick", "suite_for_run"]

ADHOC_SUITE_FILE = "<command line>"
"""The file name an ad-hoc suite is recorded under (there is no file: resume refuses it)."""

_ADHOC_NAME = "adhoc"


@dataclass(frozen=True, slots=True)
class EndpointFlags:
    """Which engine, and how to reach or start it. None/empty = not given."""

    #: Engine names (with a suite) or one engine kind (without): ``--engine``.
    engines: tuple[str, ...] = ()
    base_url: str | None = None
    model: str | None = None
    launch: bool = False
    server_python: str | None = None
    server_args: tuple[str, ...] = ()
    server_env: tuple[tuple[str, str], ...] = ()
    api: str | None = None
    api_key_env: str | None = None

    @property
    def any_server_field(self) -> bool:
        """True when a flag sets a field of an engine (not only selects engines)."""
        given = (self.base_url, self.model, self.server_python, self.api, self.api_key_env)
        return self.launch or bool(self.server_args or self.server_env) or any(v is not None for v in given)


@dataclass(frozen=True, slots=True)
class LoadFlags:
    """Load-point flags (``vllm bench serve`` names where it has them)."""

    concurrency: tuple[int, ...] | None = None
    request_rate: tuple[float, ...] | None = None
    max_concurrency: int | None = None
    burstiness: float | None = None
    warmup: int | None = None
    reset_cache: bool | None = None
    #: SLOs in ms by metric name (``--goodput ttft:500``).
    goodput: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RunFlags:
    """Every flag of ``run`` that shapes the suite."""

    endpoint: EndpointFlags = field(default_factory=EndpointFlags)
    tasks: tuple[Path, ...] = ()
    load: LoadFlags = field(default_factory=LoadFlags)
    seed: int | None = None

    @property
    def any_override(self) -> bool:
        """True when a flag changes the suite's fields (engine selection alone does not)."""
        return bool(self.tasks) or self.endpoint.any_server_field or self.load != LoadFlags()


@dataclass(frozen=True, slots=True)
class SuitePick:
    """The suite to run and which of its engines (names; empty = all)."""

    suite: LoadedSuite
    engines: tuple[str, ...]


def suite_for_run(path: Path | None, flags: RunFlags) -> SuitePick:
    """The suite ``run`` runs: ``path`` (a suite or a task file) with ``flags`` applied.

    Without ``path`` the tasks come from ``--task``; without engine flags the engine is the
    default (embedded). A suite given no overriding flag is loaded exactly as ``validate``
    loads it (so its resolved spec, and ``--resume``, are unaffected).

    Raises:
        UserError: A bad suite (``file:line:col``) or a bad flag (naming the flag).
    """
    if path is not None and "kind" not in read_doc(path, "suite or task").data:
        suite = load_suite(path)
        if not flags.any_override:
            return SuitePick(suite, _engine_names(suite, flags.endpoint.engines))
        return _override(suite, flags)
    task_paths = ((path,) if path is not None else ()) + flags.tasks
    if not task_paths:
        raise UserError("give a SUITE or TASK file, --task PATH, or --resume RUN_DIR")
    return _adhoc(task_paths, flags)


def _adhoc(task_paths: Sequence[Path], flags: RunFlags) -> SuitePick:
    seed = flags.seed or 0
    tasks = _load_tasks(task_paths, seed)
    ep = flags.endpoint
    if len(ep.engines) > 1:
        raise UserError("--engine: without a suite, give one engine kind")
    data: dict[str, Any] = {
        "name": tasks[0].spec.name if len(tasks) == 1 else _ADHOC_NAME,
        "tasks": [str(p) for p in task_paths],
        "seed": seed,
    }
    if ep.engines or ep.any_server_field:
        kind = ep.engines[0] if ep.engines else _require_kind()
        data["engines"] = [_engine_fields({"kind": _known_kind(kind)}, ep)]
    _apply_load(data, flags.load)
    spec = _validate(data)
    return SuitePick(LoadedSuite(spec, Path.cwd() / ADHOC_SUITE_FILE, tasks), ())


def _override(suite: LoadedSuite, flags: RunFlags) -> SuitePick:
    data = copy.deepcopy(suite.spec.model_dump())
    data["engines"] = list(data["engines"])  # dumped as the model's tuple
    ep = flags.endpoint
    names = _engine_names(suite, ep.engines)
    if ep.any_server_field:
        if len(names or data["engines"]) != 1:
            have = ", ".join(e["name"] for e in data["engines"])
            raise UserError(f"engine flags apply to one engine; the suite has {have}: pick one with --engine")
        target = names[0] if names else data["engines"][0]["name"]
        i = next(i for i, e in enumerate(data["engines"]) if e["name"] == target)
        data["engines"][i] = _engine_fields(data["engines"][i], ep)
    tasks = suite.tasks
    if flags.tasks:
        tasks = _load_tasks(flags.tasks, data["seed"])
        data["tasks"] = [str(p) for p in flags.tasks]
    if flags.seed is not None:
        data["seed"] = flags.seed
    _apply_load(data, flags.load)
    return SuitePick(LoadedSuite(_validate(data), suite.path, tasks), names)


def _engine_names(suite: LoadedSuite, wanted: Sequence[str]) -> tuple[str, ...]:
    """``--engine`` values as engine names: a name, or a kind that one engine has."""
    out: list[str] = []
    engines = suite.spec.engines
    for w in wanted:
        by_kind = [e.name for e in engines if e.kind == w]
        if any(e.name == w for e in engines):
            out.append(w)
        elif len(by_kind) == 1:
            out.append(by_kind[0])
        else:
            have = ", ".join(e.name for e in engines)
            raise UserError(f"--engine: {suite.path} has no engine named '{w}' (have: {have})")
    return tuple(out)


def _load_tasks(paths: Sequence[Path], seed: int) -> tuple[LoadedTask, ...]:
    for p in paths:
        data = read_doc(p, "task").data
        if "kind" not in data and "tasks" in data:
            raise UserError(
                f"--task: {display_path(p)} is a suite, not a task (give it as the SUITE argument)"
            )
    tasks = tuple(t for p in paths for t in load_tasks(p, seed=seed))
    seen: dict[str, Path] = {}
    for t in tasks:
        if t.spec.name in seen:
            raise UserError(f"--task: two tasks are named '{t.spec.name}' ({seen[t.spec.name]}, {t.path})")
        seen[t.spec.name] = t.path
    return tasks


def _require_kind() -> str:
    raise UserError(f"--engine: give the engine kind ({', '.join(engine_kinds())}) for --base-url/--launch")


def _known_kind(kind: str) -> str:
    if kind not in engine_kinds():
        raise UserError(f"--engine: unknown engine kind '{kind}' (known: {', '.join(engine_kinds())})")
    return kind


def _engine_fields(engine: Mapping[str, Any], ep: EndpointFlags) -> dict[str, Any]:
    """``engine``'s fields with the endpoint flags applied, checked against its spec class."""
    out = dict(engine)
    kind = str(out["kind"])
    fields = spec_class(kind).model_fields

    def put(name: str, flag: str, value: object) -> None:
        if name not in fields:
            raise UserError(f"{flag}: the {kind} engine has no '{name}' field")
        out[name] = value

    if ep.base_url is not None:
        put("url", "--base-url", _checked_url(ep.base_url))
        out.pop("launch", None)  # a url and a launch together: the url would silently win
    if ep.launch:
        put("launch", "--launch", _launch(out.get("launch"), ep))
        out.pop("url", None)
    elif ep.model is not None:
        put("model", "--model", ep.model)
    elif ep.server_python or ep.server_args or ep.server_env:
        raise UserError("--server-python/--server-args/--server-env: only with --launch")
    if ep.api is not None:
        put("api", "--api", ep.api)
    if ep.api_key_env is not None:
        if not ENV_NAME.fullmatch(ep.api_key_env):
            raise UserError(
                "--api-key-env: must name an environment variable (e.g. OPENAI_API_KEY), not hold a key"
            )
        put("api_key_env", "--api-key-env", ep.api_key_env)
    return out


def _launch(current: Mapping[str, Any] | None, ep: EndpointFlags) -> dict[str, Any]:
    launch = dict(current or {})
    if ep.model is not None:
        launch["model"] = ep.model
    if "model" not in launch:
        raise UserError("--launch: give --model (the checkpoint path or hub id the server loads)")
    if ep.server_python is not None:
        launch["python"] = ep.server_python
    if ep.server_args:
        launch["args"] = list(ep.server_args)
    if ep.server_env:
        launch["env"] = {**launch.get("env", {}), **dict(ep.server_env)}
    return launch


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--base-url: '{url}' is not an http(s) URL (e.g. http://127.0.0.1:8000)")
    return url.rstrip("/")


def _apply_load(data: dict[str, Any], lf: LoadFlags) -> None:
    load: dict[str, Any] = dict(data.get("load", {}))
    if lf.concurrency is not None and lf.request_rate is not None:
        raise UserError("--concurrency and --request-rate: give one (closed loop or open loop)")
    if lf.concurrency is not None:
        load.update(mode="concurrency", concurrency=list(lf.concurrency))
    if lf.request_rate is not None:
        load.update(mode="rate", rate=list(lf.request_rate))
    if lf.burstiness is not None:
        # As vllm bench serve: gamma-distributed gaps of this shape (1 = Poisson).
        load.update(arrivals="gamma", burstiness=lf.burstiness)
    for key, value in (
        ("max_concurrency", lf.max_concurrency),
        ("warmup", lf.warmup),
        ("reset_cache", lf.reset_cache),
    ):
        if value is not None:
            load[key] = value
    data["load"] = load
    if lf.goodput:
        data["slo"] = {**data.get("slo", {}), **{f"{k}_ms": v for k, v in lf.goodput}}


#: Suite fields and the flags that set them, for errors found by the model.
_FLAGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("engines", "url"), "--base-url"),
    (("engines", "launch"), "--launch"),
    (("engines", "model"), "--model"),
    (("engines", "api_key_env"), "--api-key-env"),
    (("engines", "api"), "--api"),
    (("engines",), "--engine"),
    (("load", "concurrency"), "--concurrency"),
    (("load", "rate"), "--request-rate"),
    (("load", "max_concurrency"), "--max-concurrency"),
    (("load", "burstiness"), "--burstiness"),
    (("load", "warmup"), "--num-warmups"),
    (("slo",), "--goodput"),
    (("tasks",), "--task"),
)


def _validate(data: dict[str, Any]) -> SuiteSpec:
    adapter: TypeAdapter[SuiteSpec] = TypeAdapter(suite_model())
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        keys = tuple(p for p in err["loc"] if isinstance(p, str) and p not in engine_kinds())
        flag = next((f for prefix, f in _FLAGS if keys[: len(prefix)] == prefix), "flags")
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise UserError(f"{flag}: {msg[:1].lower() + msg[1:]}") from None
