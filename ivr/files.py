"""Files at rest are private to the service user: buyer data, recordings, prompts that speak
order details, logs and secrets are 0600 in 0700 directories.

Every process of ours (the CLI, the FastAGI daemon, the classic AGI entry point and the Asterisk
it starts) runs with :data:`PRIVATE_UMASK`, so whatever it or a library creates is private; the
helpers below also tighten what an older installation left readable.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> int:
    """Make everything this process creates from now on private; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: str | Path) -> Path:
    """``path`` (and missing parents) as a directory only its owner can read, list or enter."""
    p = Path(path)
    missing = [d for d in (p, *p.parents) if not d.exists()]
    for d in reversed(missing):  # mkdir(parents=True) would make the parents with the umask
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
        _tighten(d, DIR_MODE)
    _tighten(p, DIR_MODE)
    return p


def private_file(path: str | Path) -> Path:
    """Tighten an existing file to 0600 (if we own it)."""
    p = Path(path)
    _tighten(p, FILE_MODE)
    return p


def write_private(path: str | Path, text: str, mode: int = FILE_MODE) -> Path:
    """Write ``text`` atomically (temp file + rename) with ``mode`` from the first byte."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)  # the umask cannot loosen it, but an explicit mode may be wider
    tmp.replace(p)
    return p


def open_private_log(path: str | Path) -> IO[bytes]:
    """Open a log for appending, created 0600 (and tightened if it already existed)."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    _tighten(p, FILE_MODE)
    return os.fdopen(fd, "ab")


def _tighten(p: Path, mode: int) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        return
    if st.st_uid == os.geteuid() and (st.st_mode & 0o777) & ~mode:
        os.chmod(p, (st.st_mode & 0o777) & mode)
