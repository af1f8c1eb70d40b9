"""The one encoder for AGI command arguments, and the check every command passes before it is sent.

Asterisk reads an AGI command as one line (up to ``\\n``) into an 8 KiB buffer and splits it with
``parse_args`` (res_agi.c): spaces separate arguments unless inside ``"..."``, and ``\\`` makes the
next character literal. So a line break inside a value starts a new command (``EXEC Dial ...``),
a NUL cuts the line, and a line longer than the buffer is read as two commands. Everything that
goes into a command from data therefore passes :func:`arg`, which cannot emit a control character
or an unbalanced quote and bounds the length; :func:`check_command` refuses any line that would
still be unsafe (a bug, never data), so the AGI layer never sends one.

The cost is one pass over a bounded string per argument: nothing per call beyond that.
"""

from __future__ import annotations

import re

# Asterisk's buffer is 8192 bytes (AGI_BUF_LEN); stay well inside it.
MAX_COMMAND_BYTES = 4000
# A single argument (a channel variable's value, a log message): long enough for any order field.
MAX_ARG_CHARS = 1024

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: none may reach Asterisk.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Channel variable names: optional "_"/"__" inheritance prefix, then a plain identifier (a name
# ending in ")" would be a dialplan function write).
VARIABLE_NAME = re.compile(r"_{0,2}[A-Za-z][A-Za-z0-9_]{0,79}")
# Dialplan application names (EXEC) and dialplan contexts / extensions (SET CONTEXT ...).
APP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
DIALPLAN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+*#.-]{0,79}")


class UnsafeCommand(ValueError):
    """A command or an argument that must not be sent to Asterisk; the message says why."""


def clean(value: object, max_chars: int = MAX_ARG_CHARS) -> str:
    """``value`` as text with every control character replaced by a space, cut to ``max_chars``."""
    return CONTROL.sub(" ", str(value))[:max_chars]


def arg(value: object, max_chars: int = MAX_ARG_CHARS) -> str:
    """One quoted AGI argument: Asterisk reads back exactly ``clean(value, max_chars)``."""
    text = clean(value, max_chars)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def variable_name(name: str) -> str:
    """A channel variable name for SET/GET VARIABLE, or :class:`UnsafeCommand`."""
    if not VARIABLE_NAME.fullmatch(name):
        raise UnsafeCommand(f"not a channel variable name: {name!r}")
    return name


def app_name(name: str) -> str:
    if not APP_NAME.fullmatch(name):
        raise UnsafeCommand(f"not a dialplan application name: {name!r}")
    return name


def dialplan_word(word: str) -> str:
    """A context, extension or priority for SET CONTEXT / EXTENSION / PRIORITY."""
    if not DIALPLAN_WORD.fullmatch(word):
        raise UnsafeCommand(f"not a dialplan context/extension: {word!r}")
    return word


def split(line: str) -> list[str]:
    """The arguments Asterisk's ``parse_args`` makes of ``line``; :class:`UnsafeCommand` when a
    quote or an escape is left open (Asterisk would read the rest of the line differently)."""
    out: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                out.append("".join(cur))
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
        cur.append(ch)
        escaped = False
    if quoted or escaped:
        raise UnsafeCommand(f"unbalanced quote or escape in AGI command {line[:80]!r}")
    if cur is not None:
        out.append("".join(cur))
    return out


def check_command(line: str) -> str:
    """Return ``line`` if it is safe to send as one AGI command, else raise UnsafeCommand."""
    bad = CONTROL.search(line)
    if bad:
        raise UnsafeCommand(f"control character {bad.group()!r} in AGI command {line[:80]!r}")
    if len(line.encode("utf-8")) > MAX_COMMAND_BYTES:
        raise UnsafeCommand(f"AGI command longer than {MAX_COMMAND_BYTES} bytes "
                            f"({line[:40]!r}...)")
    split(line)
    return line
