"""Prompt text: Jinja2 templates filled with the order's fields, as text to be spoken.

Every prompt goes through :func:`render_prompt` / :func:`render_text`, and the order values go
through :func:`spoken_fields` first, which is the seam where prices and dates become words in the
call's language (the TTS layer replaces :data:`SPOKEN_FORMATTER` with a full number/date reader).
Rendering never raises on data: a missing order field renders empty and is logged, so a bad order
row cannot end a call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from ivr.survey.script import Confirm, Node

log = logging.getLogger(__name__)

_ENV = SandboxedEnvironment(undefined=jinja2.Undefined, autoescape=False)
# A line break inside Chinese text is not a pause: drop the space YAML folding puts there.
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef]) (?=[\u3000-\u9fff\uff00-\uffef])")


def _default_spoken(context: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """Minimal spoken forms: 59.0 -> "59", ISO time -> "3月5日" / "3월 5일"."""
    out = dict(context)
    price = out.get("price")
    if isinstance(price, float):
        out["price"] = f"{price:.2f}".rstrip("0").rstrip(".")
    when = out.get("order_time")
    if isinstance(when, str) and when:
        try:
            t = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            out["order_time"] = {
                "cmn": f"{t.month}月{t.day}日", "ko": f"{t.month}월 {t.day}일",
            }.get(lang, t.date().isoformat())
    return out


# (context, lang) -> template variables; replaced by the TTS engineer's spoken-text function.
SPOKEN_FORMATTER: Callable[[Mapping[str, Any], str], dict[str, Any]] = _default_spoken


def spoken_fields(context: Mapping[str, Any], lang: str) -> dict[str, Any]:
    return SPOKEN_FORMATTER(context, lang)


@lru_cache(maxsize=512)
def compile_template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def template_fields(source: str) -> set[str]:
    """Variables a template uses (raises jinja2.TemplateSyntaxError on bad syntax)."""
    return set(jinja2.meta.find_undeclared_variables(_ENV.parse(source)))


def render_text(source: str, context: Mapping[str, Any], lang: str, **extra: Any) -> str:
    """Render one template with the spoken order fields (+ ``extra``, e.g. ``prompt``)."""
    if not source:
        return ""
    values = spoken_fields(context, lang)
    values.update(extra)
    missing = [f for f in template_fields(source) if values.get(f) in (None, "")]
    if missing:
        log.warning("prompt rendered without order fields %s: %r", missing, source[:60])
    try:
        return _CJK_GAP.sub("", " ".join(compile_template(source).render(values).split()))
    except jinja2.TemplateError as exc:  # validated at load time; never crash a call on it
        log.error("prompt template failed (%s): %r", exc, source[:60])
        return ""


def prompt_source(node: Node, lang: str, fallback_lang: str | None = None) -> str:
    """The node's prompt template for ``lang`` (a plain string serves every language)."""
    if isinstance(node.prompt, str):
        return node.prompt
    return node.prompt.get(lang) or node.prompt.get(fallback_lang or lang, "")


def render_prompt(node: Node, context: Mapping[str, Any], lang: str) -> str:
    """The text to speak for ``node`` in ``lang`` with the order ``context``."""
    return render_text(prompt_source(node, lang), context, lang)


def all_templates(node: Node) -> Iterable[tuple[tuple[Any, ...], str]]:
    """(path inside the node, template source) of every template the node holds."""
    if isinstance(node.prompt, str):
        yield ("prompt",), node.prompt
    else:
        for lang, src in node.prompt.items():
            yield ("prompt", lang), src
    for key in ("noinput", "nomatch"):
        for i, src in enumerate(getattr(node, key) or []):
            yield (key, i), src
    if node.dtmf_reprompt:
        yield ("dtmf_reprompt",), node.dtmf_reprompt
    for var, src in node.variables.items():
        yield ("variables", var), src


def confirmation_texts(confirm: Confirm, phrases: Mapping[str, Sequence[str]],
                       context: Mapping[str, Any], lang: str,
                       script_lang: str) -> dict[str, str]:
    """phrase (whitespace-collapsed) -> the prompt confirming it, for every phrase heard."""
    source = confirm.prompt_for(lang, script_lang)
    heard = [" ".join(p.split()) for ps in phrases.values() for p in ps]
    return {p: render_text(source, context, lang, answer=p) for p in heard}
