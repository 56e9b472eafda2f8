"""What an engine spec needs from the machine it runs on: a usable URL, its interpreter, its key.

Pydantic checks the types; these checks look outside the spec (the URL's shape, the
filesystem, the environment). ``validate`` runs them with the spec's ``file:line:col``
(:func:`structbench.spec.loader.load_suite`), and ``run`` runs them again in its preflight on
the engines it will use, since flags may have changed them after loading.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit

from structbench.spec.engines import EngineSpec
from structbench.spec.marks import DataPath

__all__ = ["EngineProblem", "engine_problems", "url_problem"]


@dataclass(frozen=True, slots=True)
class EngineProblem:
    """One problem with an engine spec.

    Attributes:
        field: The offending field, relative to the engine (``("launch", "python")``).
        message: What is wrong, without the value where it may hold a secret.
        run_only: True when only ``run`` must refuse it and ``validate`` warns (see
            :func:`engine_problems`).
    """

    field: DataPath
    message: str
    run_only: bool = False


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an ``http(s)://host[:port]`` URL, or None when it is.

    The message never repeats the URL: one may carry credentials (``http://user:pw@host``),
    and without a scheme ``urlsplit`` reads ``localhost:8000`` as the scheme ``localhost``.
    """
    if "://" not in url:
        return "no http:// or https:// scheme: write it as http://host:port"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        return "bad port: write it as http://host:port"
    if parts.scheme not in ("http", "https"):
        return f"the scheme must be http or https, got '{parts.scheme}'"
    if not parts.hostname:
        return "no host: write it as http://host:port"
    return None


def engine_problems(spec: EngineSpec) -> list[EngineProblem]:
    """Every problem ``run`` would meet starting or reaching ``spec``'s engine, in field order.

    An unset ``api_key_env`` variable is ``run_only``: a suite is often validated on another
    machine than the one that runs it (a CI lint job, a laptop before a cluster), and the key is
    the one thing that is meant to be there only when the run starts. A missing ``launch.python``
    is an error at validate too: it names a file, like a dataset path does.
    """
    out: list[EngineProblem] = []
    url = spec.attach_url
    if url is not None and (why := url_problem(url)) is not None:
        out.append(EngineProblem(("url",), why))
    python = spec.launch_python
    if python is not None and shutil.which(python) is None:
        if os.sep in python or (os.altsep is not None and os.altsep in python):
            why = "no such file" if not os.path.exists(python) else "not an executable file"
            if not os.path.isabs(python):  # Popen resolves it against the working directory
                why += f" (relative to the working directory {os.getcwd()})"
            out.append(EngineProblem(("launch", "python"), f"cannot run '{python}': {why}"))
        else:
            out.append(EngineProblem(("launch", "python"), f"cannot run '{python}': not found on PATH"))
    key_env = spec.key_env
    if key_env is not None and not os.environ.get(key_env):
        msg = f"environment variable {key_env} is not set (the API key is read from it when the run starts)"
        out.append(EngineProblem(("api_key_env",), msg, run_only=True))
    return out
