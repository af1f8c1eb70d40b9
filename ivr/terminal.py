"""The encoder for data shown on a terminal: never rich markup, never a control sequence.

Merchant names, products, reasons and transcripts are data; printed through rich as plain strings
they would be read as markup (``[/oops]`` raises, ``[link=...]`` makes a link) and their escape
sequences would drive the operator's terminal. Tables get :func:`cell` (a ``Text``, which rich never
parses) and markup strings embed data through :func:`markup`.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from ivr.fields import CONTROL


def visible(value: object) -> str:
    """``value`` as text with each control character written as its escape (``\\x1b``)."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


def cell(value: object, style: str = "") -> Text:
    """A table cell holding ``value`` literally."""
    return Text(visible(value), style=style)


def markup(value: object) -> str:
    """``value`` to embed in a rich markup string (``f"[bold]{markup(name)}[/]"``)."""
    return escape(visible(value))
