"""Install Asterisk 22 reproducibly from Debian's own packages.

Debian bookworm has no Asterisk; forky (testing) has 22.x. Installing forky's package on the host
would upgrade libc and remove libssl3, so we build a minimal forky root with ``mmdebstrap`` and run
Asterisk from it *through that root's own dynamic loader* (:mod:`ivr.asterisk.process`). Asterisk
then runs as a host process: AGI scripts it spawns are ordinary host programs (our venv), and no
bind mounts or chroot are needed.

The root is cached under ``$IVR_CACHE`` (default ``~/.cache/ivr``) and keyed by the package set; a
second ``ivr setup`` finds the stamp and returns in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SUITES = ("forky", "sid")  # sid is the fallback when forky's asterisk is briefly uninstallable
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm")
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
STAMP = ".ivr-root.json"

# Host tools the bed needs, from bookworm (Debian package -> binary it provides).
HOST_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "sip-tester": "sipp",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "ffmpeg": "ffmpeg",
}


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class AsteriskRoot:
    path: Path

    @property
    def loader(self) -> Path:
        return self.path / "lib64" / "ld-linux-x86-64.so.2"

    @property
    def library_path(self) -> str:
        arch = "x86_64-linux-gnu"
        return ":".join(str(self.path / d) for d in (f"usr/lib/{arch}", f"lib/{arch}"))

    @property
    def binary(self) -> Path:
        return self.path / "usr" / "sbin" / "asterisk"

    @property
    def modules_dir(self) -> Path:
        return self.path / "usr" / "lib" / "x86_64-linux-gnu" / "asterisk" / "modules"

    @property
    def documentation_dir(self) -> Path:
        return self.path / "usr" / "share" / "asterisk" / "documentation"

    @property
    def sounds_dir(self) -> Path:
        return self.path / "usr" / "share" / "asterisk" / "sounds"

    def command(self, *args: str) -> list[str]:
        """argv that runs forky's asterisk with forky's loader and libraries on this host."""
        return [str(self.loader), "--library-path", self.library_path, str(self.binary), *args]

    def is_ready(self) -> bool:
        stamp = self.path / STAMP
        if not (stamp.exists() and self.binary.exists() and self.loader.exists()):
            return False
        try:
            return bool(json.loads(stamp.read_text())["key"] == root_key())
        except (ValueError, KeyError):
            return False

    def version(self) -> str:
        out = subprocess.run(self.command("-V"), capture_output=True, text=True, timeout=30)
        return out.stdout.strip()


def root_key() -> str:
    """Identity of the package set; a change of it rebuilds the root."""
    blob = json.dumps([SUITES, PACKAGES, EXCLUDES]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def missing_host_tools() -> list[str]:
    return [pkg for pkg, binary in HOST_TOOLS.items() if shutil.which(binary) is None]


def ensure_root(path: Path, log: Callable[[str], None] = print) -> AsteriskRoot:
    """Build the forky root at ``path`` unless an identical one is already there."""
    root = AsteriskRoot(path)
    if root.is_ready():
        return root
    if shutil.which("mmdebstrap") is None:
        raise InstallError("mmdebstrap is missing: apt-get install mmdebstrap (Debian bookworm)")
    if os.geteuid() != 0:
        raise InstallError(
            "building the Asterisk root needs root (mmdebstrap creates device nodes)")
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for suite in SUITES:
        tmp = Path(tempfile.mkdtemp(prefix=".forky-", dir=path.parent))
        cmd = [
            "mmdebstrap", "--variant=apt", "--include=" + ",".join(PACKAGES),
            "--aptopt=Acquire::Check-Valid-Until \"false\"",
            *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDES],
            suite, str(tmp), MIRROR,
        ]
        log(f"building Asterisk root from Debian {suite} (about a minute) ...")
        shutil.rmtree(tmp)  # mmdebstrap wants a missing or empty target
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0 and AsteriskRoot(tmp).binary.exists():
            # Without it Asterisk stalls ~15 s on DNS look-ups at boot.
            shutil.copy("/etc/hosts", tmp / "etc" / "hosts")
            (tmp / STAMP).write_text(json.dumps({"key": root_key(), "suite": suite}))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
            log(f"Asterisk root ready: {AsteriskRoot(path).version()}")
            return AsteriskRoot(path)
        errors.append(f"{suite}: {proc.stderr.strip().splitlines()[-3:]}")
        shutil.rmtree(tmp, ignore_errors=True)
    raise InstallError("could not build the Asterisk root: " + " | ".join(errors))
