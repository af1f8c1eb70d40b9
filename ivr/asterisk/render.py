"""Render ``asterisk_conf/*.j2`` and our settings into the run directory Asterisk reads.

The rendered files are plain Asterisk configs a telecom engineer can read; the templates and
``ivr.yaml`` are what they edit. Dialplans are included from ``dialplans/`` in place, so editing one
and running ``ivr dialplan reload`` needs no re-render.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import jinja2

from ivr.asterisk.install import AsteriskRoot
from ivr.config import PROJECT_ROOT, Settings
from ivr.secrets import stored_secret

TEMPLATES_DIR = PROJECT_ROOT / "asterisk_conf"
DIALPLANS_DIR = PROJECT_ROOT / "dialplans"
CONF_FILES = ("asterisk.conf", "modules.conf", "pjsip.conf", "manager.conf", "rtp.conf",
              "logger.conf", "extensions.conf", "amd.conf")
# Configs of core subsystems we do not use, rendered minimal to keep the log meaningful.
QUIET_FILES = ("cdr.conf", "cel.conf", "features.conf", "acl.conf", "udptl.conf", "ccss.conf",
               "pjproject.conf", "indications.conf")
SUBDIRS = ("etc", "lib", "keys", "data", "agi-bin", "spool", "run", "log")


def ami_secret(settings: Settings) -> str:
    """The configured AMI secret, or one generated once per installation (mode 0600)."""
    if settings.ami.secret:
        return settings.ami.secret
    path = secret_file(settings)
    return stored_secret(path.parent, path.name)


def secret_file(settings: Settings) -> Path:
    return settings.home / "secrets" / "ami_secret"


def dialplan_files(settings: Settings) -> list[Path]:
    return sorted(DIALPLANS_DIR.glob("*.conf"))


def agi_entry_point() -> Path:
    """The ``ivr-agi`` console script of the environment we run from."""
    candidate = Path(sys.executable).with_name("ivr-agi")
    if candidate.exists():
        return candidate
    found = shutil.which("ivr-agi")
    if found:
        return Path(found)
    raise FileNotFoundError("ivr-agi entry point not found: install the package (pip install -e .)")


def render(settings: Settings) -> Path:
    """Write every config into ``settings.run_dir/etc``; returns the asterisk.conf path."""
    root = AsteriskRoot(settings.asterisk.root)
    run = settings.run_dir
    for sub in SUBDIRS:
        (run / sub).mkdir(parents=True, exist_ok=True)
    # The classic AGI process must see exactly the settings the daemon runs with.
    effective = run / "ivr-effective.json"
    _write(effective, settings.model_dump_json(indent=2), 0o600)
    # Asterisk needs its XML documentation at start-up (stasis refuses to initialise without it).
    doc_link = run / "data" / "documentation"
    if not doc_link.exists():
        if doc_link.is_symlink():
            doc_link.unlink()
        doc_link.symlink_to(root.documentation_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    values = {
        "root": root.path,
        "modules_dir": root.modules_dir,
        "run": run,
        "bind": settings.asterisk.bind,
        "sip_port": settings.asterisk.sip_port,
        "rtp_start": settings.asterisk.rtp_start,
        "rtp_end": settings.asterisk.rtp_end,
        "extra_modules": settings.asterisk.extra_modules,
        "trunk": settings.trunk,
        "trunks": settings.all_trunks,
        "transports": sorted({t.transport for t in settings.all_trunks}),
        "ami": settings.ami,
        "ami_secret": ami_secret(settings),
        "secret_file": secret_file(settings),
        "agi": settings.agi,
        "prompts_dir": settings.prompts_dir,
        "agent_dial": settings.agent_dial,
        "dialplans_dir": DIALPLANS_DIR,
        "dialplan_files": dialplan_files(settings),
        "config_path": effective,
        "home": settings.home,
        "agi_bin": agi_entry_point(),
    }
    etc = run / "etc"
    for name in CONF_FILES:
        text = env.get_template(name + ".j2").render(**values)
        _write(etc / name, text, 0o600 if name == "manager.conf" else 0o644)
    for name in QUIET_FILES:
        _write(etc / name, env.get_template("quiet.conf.j2").render(name=name), 0o644)
    wrapper = run / "agi-bin" / "ivr-agi"
    _write(wrapper, env.get_template("ivr-agi.sh.j2").render(**values), 0o755)
    return etc / "asterisk.conf"


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    tmp.replace(path)
