"""Message templates written by operators (region rules, event rules): Jinja2 in a sandbox, so a
template can only fill in fields, never reach Python; a field it needs but lacks is an error."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def check_template(text: str | None) -> str | None:
    """For validators: ``text`` when it parses, else ValueError naming the template line."""
    if text is not None:
        try:
            TEMPLATES.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"message template: {exc.message} (template line "
                             f"{exc.lineno})") from exc
    return text


def render_template(text: str, context: dict[str, Any]) -> str:
    """Raises jinja2.TemplateError (e.g. an undefined field)."""
    return TEMPLATES.from_string(text).render(context)


def unique_names(names: Iterable[str], what: str = "rule names") -> None:
    """ValueError listing the repeated names, if any."""
    seen = list(names)
    dups = sorted({n for n in seen if seen.count(n) > 1})
    if dups:
        raise ValueError(f"{what} must be unique: {dups}")
