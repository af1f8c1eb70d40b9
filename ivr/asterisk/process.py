"""Start, query and stop the local Asterisk (forky binaries run through forky's own loader)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from ivr.asterisk.install import AsteriskRoot
from ivr.asterisk.render import RenderError, render
from ivr.config import Settings
from ivr.files import PRIVATE_UMASK, open_private_log, private_dir


class AsteriskError(RuntimeError):
    pass


class Asterisk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = AsteriskRoot(settings.asterisk.root)
        self.conf = settings.run_dir / "etc" / "asterisk.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.settings.run_dir / "log" / "messages.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / "run" / "asterisk.pid"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("LD_LIBRARY_PATH", None)
        return env

    def start(self, timeout: float = 30.0) -> None:
        """Render the configs and boot Asterisk in the background; returns when fully booted."""
        if not self.root.is_ready():
            raise AsteriskError(
                f"Asterisk is not installed at {self.root.path}: run `ivr setup` first")
        if self.running():
            raise AsteriskError(f"an Asterisk already runs from {self.settings.run_dir}")
        try:
            render(self.settings)
        except RenderError as exc:
            raise AsteriskError(f"configuration not rendered: {exc}") from exc
        private_dir(self.log_file.parent)
        console = open_private_log(self.settings.run_dir / "log" / "console.log")
        # Asterisk writes recordings, logs and its database with this umask: 0600 / 0700.
        self.proc = subprocess.Popen(
            self.root.command("-C", str(self.conf), "-f", "-n", "-q"),
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            env=self._env(), start_new_session=True, umask=PRIVATE_UMASK,
        )
        console.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AsteriskError(
                    f"Asterisk exited with {self.proc.returncode} at start-up; see "
                    f"{self.settings.run_dir / 'log' / 'console.log'}")
            if (self.settings.run_dir / "run" / "asterisk.ctl").exists():
                out = self.rx("core waitfullybooted", timeout=timeout, check=False)
                if "fully booted" in out:
                    return
            time.sleep(0.05)
        self.stop()
        raise AsteriskError(f"Asterisk did not boot within {timeout:.0f} s")

    def rx(self, command: str, timeout: float = 15.0, check: bool = True) -> str:
        """Run one CLI command on the running Asterisk (``asterisk -rx``)."""
        proc = subprocess.run(
            self.root.command("-C", str(self.conf), "-rx", command),
            capture_output=True, text=True, timeout=timeout, env=self._env(),
        )
        out = proc.stdout + proc.stderr
        if check and (proc.returncode != 0 or "Unable to connect" in out):
            raise AsteriskError(f"asterisk -rx {command!r} failed: {out.strip()}")
        return out

    def running(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _pid(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.rx("core stop now", timeout=timeout, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.05)
        if self._alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=5)
            self.proc = None

    def _alive(self, pid: int) -> bool:
        if self.proc is not None and self.proc.pid == pid:
            return self.proc.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def log_tail(self, lines: int = 50) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
