"""The root of every error an operator has to act on, so the CLI reports them all the same way.

A :class:`ConfigError` says what to fix: a file (``file:line: key: problem``, one line per
problem), a setting, a command's input or a state (an unknown or stopped campaign). Every ``ivr``
command group prints it as ``Error: <message>`` and exits with its :attr:`~ConfigError.exit_code`
(2: fix the input; 1 for states such as an unknown campaign), so no command catches its own tuple
of exception classes. Errors of the machinery (Asterisk down, a broken pipe) are not ConfigErrors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """Something the operator must fix; ``str()`` is the message, one line per problem."""

    exit_code = 2

    def __init__(self, problems: str | Sequence[str] = "", *, path: Path | str | None = None
                 ) -> None:
        self.problems: Sequence[Any] = [problems] if isinstance(problems, str) else list(problems)
        self.path = str(path) if path is not None else None
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(ConfigError):
    """The request is well formed but the state does not allow it (unknown id, wrong status)."""

    exit_code = 1
