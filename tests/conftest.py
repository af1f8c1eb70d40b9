"""Shared fixtures. Real-call tests need the telephony bed; in CI its absence is a failure."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ivr.asterisk.install import AsteriskRoot
from ivr.asterisk.render import agi_entry_point
from ivr.config import AsteriskSettings

sys.path.insert(0, str(Path(__file__).parent))  # tests/support, whatever the import mode

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip locally, fail in CI: a missing real component is never a silent pass there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI (run ./dev setup)")
    pytest.skip(f"{what} is missing (run ./dev setup)")


@pytest.fixture(scope="session")
def telephony() -> None:
    """Asserts Asterisk (forky root), sipp, espeak-ng and sox are installed."""
    require(AsteriskRoot(AsteriskSettings().root).is_ready(), "Asterisk 22 root (ivr setup)")
    for tool in ("sipp", "espeak-ng", "sox"):
        require(shutil.which(tool) is not None, tool)
    try:
        agi_entry_point()  # the renderer's lookup: next to sys.executable, then PATH
    except FileNotFoundError:
        require(False, "ivr-agi entry point (pip install -e .)")


@pytest.fixture(scope="session")
def mount_namespaces() -> None:
    """Private mount namespaces (unshare, as root): read-only bind mounts and small tmpfs."""
    require(shutil.which("unshare") is not None and os.geteuid() == 0,
            "unshare run as root (mount namespaces)")
