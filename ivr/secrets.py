"""Secrets generated once per installation under ``<home>/secrets`` (directory 0700, files 0600).

Whatever the engine generates for itself (the AMI secret, the webhook signing key, the console's
session key) is made here, so every one of them is created the same private way.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ivr.files import private_dir


def stored_secret(directory: Path, name: str, nbytes: int = 24) -> str:
    """The secret in ``directory/name``, generated (URL-safe, ``nbytes`` random bytes) the first
    time. Created with O_EXCL and mode 0600, so two processes starting at once agree on one."""
    path = directory / name
    if path.exists():
        return path.read_text().strip()
    private_dir(directory)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
