"""systemd units for a deployment: Asterisk, the FastAGI daemon and ``ivr serve``.

Rendered (``ivr service units --out DIR``) with this installation's paths: the venv's ``ivr``,
the config file, the forky root's loader for Asterisk (run in the foreground, so systemd owns
it). The units run as an unprivileged user, keep secrets private (``UMask=0077``), write only
under ``home``, and order the service after Asterisk and the daemon it needs; logs go to journald
(the service's lines are JSON there too).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ivr.asterisk.install import AsteriskRoot
from ivr.config import Settings

_COMMON = """\
User={user}
Group={group}
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={home}
Restart=on-failure
RestartSec=3
"""

ASTERISK = """\
[Unit]
Description=Asterisk 22 for ivr (forky root, loopback trunk and AMI)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStartPre={ivr} -c {config} asterisk render
ExecStart={asterisk}
ExecStop={asterisk_stop}
TimeoutStopSec=30
{common}
[Install]
WantedBy=multi-user.target
"""

FASTAGI = """\
[Unit]
Description=ivr FastAGI daemon (the surveys Asterisk hands answered calls to)
After=network.target
Before=ivr-asterisk.service

[Service]
Type=simple
ExecStart={ivr} -c {config} -v agi serve
TimeoutStopSec=60
{common}
[Install]
WantedBy=multi-user.target
"""

SERVICE = """\
[Unit]
Description=ivr service: HTTP API, console, campaigns, event rules, webhooks
After=ivr-asterisk.service ivr-fastagi.service
Wants=ivr-asterisk.service ivr-fastagi.service

[Service]
Type=simple
ExecStart={ivr} -c {config} serve
# SIGTERM: no new dials; calls in progress end first (up to 90 s), then the service exits.
TimeoutStopSec=120
{common}
[Install]
WantedBy=multi-user.target
"""


def _ivr() -> str:
    candidate = Path(sys.executable).with_name("ivr")
    return str(candidate if candidate.exists() else "ivr")


def render_units(settings: Settings, config_file: Path, *, user: str = "ivr",
                 group: str | None = None) -> dict[str, str]:
    """unit file name -> text."""
    root = AsteriskRoot(settings.asterisk.root)
    conf = settings.run_dir / "etc" / "asterisk.conf"
    asterisk = shlex.join(root.command("-C", str(conf), "-f", "-n", "-q"))
    stop = shlex.join(root.command("-C", str(conf), "-rx", "core stop gracefully"))
    values = {"ivr": shlex.quote(_ivr()), "config": shlex.quote(str(config_file.resolve())),
              "asterisk": asterisk, "asterisk_stop": stop,
              "common": _COMMON.format(user=user, group=group or user,
                                       home=shlex.quote(str(settings.home)))}
    return {"ivr-asterisk.service": ASTERISK.format(**values),
            "ivr-fastagi.service": FASTAGI.format(**values),
            "ivr.service": SERVICE.format(**values)}
