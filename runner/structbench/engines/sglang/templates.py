"""Chat templates for SGLang programs: derived from the model's own template, rendered the SGLang way.

SGLang's interpreter renders chats with a per-role ``(prefix, suffix)`` table
(``sglang.lang.chat_template.ChatTemplate``) and picks the table by matching the model
path against a list of names. For a model it doesn't know, it falls back to a plain
``SYSTEM:``/``USER:`` template that the model was never trained on, and even for known
families the default system prompt can differ from the model's (Qwen2.5 has its own).
So structbench derives the table from the model's own chat template (a Jinja template
rendered by transformers or by the embedded runtime): it renders a few conversations
with marker contents, reads the prefixes and suffixes between the markers, and keeps
the result only when it reproduces the model's rendering exactly. Generate mode renders
prompts with the same table, so both modes send the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from structbench.ir import Message

#: Renders ``(role, content)`` messages with a model's own chat template.
RenderFn = Callable[[list[tuple[str, str]], bool], str]

_ROLES = ("system", "user", "assistant")
_MARK = {r: f"\u2063SB{r.upper()}MARK\u2063" for r in _ROLES}


@dataclass(frozen=True, slots=True)
class RoleTemplate:
    """A chat template as SGLang's interpreter applies it.

    Attributes:
        name: Name it is registered under in SGLang's template registry.
        prefixes: ``(role, prefix)`` for system, user and assistant.
        suffixes: ``(role, suffix)`` for system, user and assistant.
        default_system_prompt: Inserted when a chat does not start with a system message.
        stop: Stop strings SGLang adds to every gen (the end-of-turn marker).
    """

    name: str
    prefixes: tuple[tuple[str, str], ...]
    suffixes: tuple[tuple[str, str], ...]
    default_system_prompt: str | None = None
    stop: tuple[str, ...] = ()

    def prefix(self, role: str) -> str:
        """Text before a message of ``role``."""
        return dict(self.prefixes).get(role, "")

    def suffix(self, role: str) -> str:
        """Text after a message of ``role``."""
        return dict(self.suffixes).get(role, "")

    def block(self, role: str, content: str) -> str:
        """One rendered message."""
        return self.prefix(role) + content + self.suffix(role)


def render(template: RoleTemplate, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """Render messages exactly as SGLang's interpreter would fill ``s.text_``.

    Like the interpreter, it inserts the default system prompt before a first message
    that is not a system message, and ends with the assistant prefix when asked.
    """
    out = ""
    if messages and messages[0].role != "system" and template.default_system_prompt:
        out += template.block("system", template.default_system_prompt)
    for m in messages:
        out += template.block(m.role, m.content)
    if add_generation_prompt:
        out += template.prefix("assistant")
    return out


def _split(text: str, mark: str) -> tuple[str, str] | None:
    i = text.find(mark)
    return None if i < 0 else (text[:i], text[i + len(mark) :])


def _after(text: str, head: str) -> str | None:
    return text[len(head) :] if text.startswith(head) else None


def _derive_blocks(r: RenderFn) -> tuple[dict[str, str], dict[str, str]] | None:
    """Prefix and suffix per role, from renderings that grow one message at a time."""
    s, u, a = (("system", _MARK["system"]), ("user", _MARK["user"]), ("assistant", _MARK["assistant"]))
    one = r([s], False)
    su = r([s, u], False)
    su_gen = r([s, u], True)
    sua = r([s, u, a], False)
    sys_parts = _split(one, s[1])
    user_block = _after(su, one)
    asst_prefix = _after(su_gen, su)
    asst_block = _after(sua, su)
    if sys_parts is None or user_block is None or asst_prefix is None or asst_block is None:
        return None
    user_parts = _split(user_block, u[1])
    asst_parts = _split(asst_block, a[1])
    if user_parts is None or asst_parts is None or asst_parts[0] != asst_prefix:
        return None
    prefixes = {"system": sys_parts[0], "user": user_parts[0], "assistant": asst_prefix}
    suffixes = {"system": sys_parts[1], "user": user_parts[1], "assistant": asst_parts[1]}
    return prefixes, suffixes


def _default_system(r: RenderFn, t: RoleTemplate) -> tuple[bool, str | None]:
    """(ok, prompt): the system prompt the template inserts when a chat has none."""
    only_user = r([("user", _MARK["user"])], False)
    tail = t.block("user", _MARK["user"])
    if only_user == tail:
        return True, None
    if not only_user.endswith(tail):
        return False, None
    head = only_user[: -len(tail)]
    pre, suf = t.prefix("system"), t.suffix("system")
    if not (head.startswith(pre) and head.endswith(suf) and len(head) >= len(pre) + len(suf)):
        return False, None
    return True, head[len(pre) : len(head) - len(suf)]


def derive_template(name: str, r: RenderFn) -> RoleTemplate | None:
    """Derive SGLang's role table from a model's own chat template.

    Args:
        name: Name for the derived template.
        r: Renders ``(role, content)`` messages with the model's template;
            the bool is ``add_generation_prompt``.

    Returns:
        The table, or None when the model's template is not a plain per-role one (it
        depends on position, dates, tools...) and the table would not reproduce it.
    """
    try:
        blocks = _derive_blocks(r)
        if blocks is None:
            return None
        pre, suf = blocks
        stop = suf["assistant"].strip()
        t = RoleTemplate(name, tuple(pre.items()), tuple(suf.items()), None, (stop,) if stop else ())
        ok, default = _default_system(r, t)
        if not ok:
            return None
        t = RoleTemplate(t.name, t.prefixes, t.suffixes, default, t.stop)
        return t if _reproduces(r, t) else None
    except Exception:
        # A template that raises on our probe conversations (e.g. one that insists on
        # strict user/assistant alternation) is simply not derivable.
        return None


def _reproduces(r: RenderFn, t: RoleTemplate) -> bool:
    probes = [
        [("system", "sys"), ("user", "q1"), ("assistant", "a1"), ("user", "q2")],
        [("user", "q1"), ("assistant", "a1"), ("user", "q2")],
    ]
    for msgs in probes:
        ours = render(t, [Message(role, c) for role, c in msgs], True)  # type: ignore[arg-type]
        if ours != r(msgs, True):
            return False
    return True


def hf_render_fn(tokenizer: Any) -> RenderFn:
    """A :data:`RenderFn` over a transformers tokenizer's ``apply_chat_template``."""

    def r(messages: list[tuple[str, str]], add_generation_prompt: bool) -> str:
        msgs = [{"role": role, "content": content} for role, content in messages]
        out = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt)
        return str(out)

    return r


def to_sgl_chat_template(t: RoleTemplate) -> Any:
    """The same template as an ``sglang.lang.chat_template.ChatTemplate``, registered by name."""
    from sglang.lang.chat_template import ChatTemplate, register_chat_template

    tmpl = ChatTemplate(
        name=t.name,
        default_system_prompt=t.default_system_prompt,
        role_prefix_and_suffix={r: (t.prefix(r), t.suffix(r)) for r in _ROLES},
        stop_str=t.stop,
    )
    register_chat_template(tmpl)
    return tmpl


def from_sgl_chat_template(tmpl: Any) -> RoleTemplate:
    """Our copy of an SGLang ``ChatTemplate`` (only its PLAIN style is reproduced)."""
    table: dict[str, tuple[str, str]] = dict(tmpl.role_prefix_and_suffix)
    return RoleTemplate(
        name=str(tmpl.name),
        prefixes=tuple((r, table.get(r, ("", ""))[0]) for r in _ROLES),
        suffixes=tuple((r, table.get(r, ("", ""))[1]) for r in _ROLES),
        default_system_prompt=tmpl.default_system_prompt,
        stop=tuple(tmpl.stop_str or ()),
    )


#: SmolLM2-Instruct's own template (ChatML with its default system prompt), used when the
#: embedded runtime's template can't be derived.
SMOLLM2_TEMPLATE = RoleTemplate(
    name="structbench-smollm2",
    prefixes=(
        ("system", "<|im_start|>system\n"),
        ("user", "<|im_start|>user\n"),
        ("assistant", "<|im_start|>assistant\n"),
    ),
    suffixes=(("system", "<|im_end|>\n"), ("user", "<|im_end|>\n"), ("assistant", "<|im_end|>\n")),
    default_system_prompt="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    stop=("<|im_end|>",),
)
