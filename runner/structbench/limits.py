"""The token limits of a cell's work against the context length its engine reports.

Checked once an engine has started and before it gets any load: a task that asks for more
output tokens than the server's whole context can never be served as asked. Servers differ
in what they do then (refuse each request, or clamp the limit and generate until the
context is full, which on a CPU looks like a run that streams for ever); either way every
figure of the cell would describe something other than the task. One line says so instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from structbench.engines.base import EngineInfo
from structbench.errors import UserError
from structbench.ir import WorkItem

__all__ = ["check_token_limits"]


def check_token_limits(info: EngineInfo, items: Iterable[WorkItem]) -> None:
    """Refuse work whose ``max_tokens`` leaves no room for a prompt in the engine's context.

    Only what no prompt could fit is refused (``max_tokens >= context``): a prompt that is
    merely too long for its own item is the server's to refuse, as one failed request.

    Raises:
        UserError: Naming the engine, the task, the largest ``max_tokens`` and the context
            length (nothing to check when the engine reports no context length).
    """
    context = info.context_length
    if context is None:
        return
    worst: dict[str, int] = {}
    for item in items:
        for _, _, gen in item.gens():
            if gen.max_tokens >= context and gen.max_tokens > worst.get(item.task, 0):
                worst[item.task] = gen.max_tokens
    if worst:
        task, asked = max(worst.items(), key=lambda kv: kv[1])
        others = f" (and {len(worst) - 1} more task{'s' if len(worst) > 2 else ''})" if len(worst) > 1 else ""
        raise UserError(
            f"engine '{info.name}': task '{task}' asks for max_tokens {asked}{others}, but the server's "
            f"context is {context} tokens (max_model_len, shared by prompt and output): lower the task's "
            "max_tokens or raise the server's limit"
        )
