"""Render ``asterisk_conf/*.j2`` and our settings into the run directory Asterisk reads.

The rendered files are plain Asterisk configs a telecom engineer can read; the templates and
``ivr.yaml`` are what they edit. Dialplans are included from ``dialplans/`` in place, so editing one
and running ``ivr dialplan reload`` needs no re-render.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import jinja2

from ivr import fields
from ivr.asterisk.install import AsteriskRoot
from ivr.config import PROJECT_ROOT, Settings
from ivr.files import private_dir, write_private
from ivr.secrets import stored_secret

TEMPLATES_DIR = PROJECT_ROOT / "asterisk_conf"
DIALPLANS_DIR = PROJECT_ROOT / "dialplans"
CONF_FILES = ("asterisk.conf", "modules.conf", "pjsip.conf", "manager.conf", "rtp.conf",
              "logger.conf", "extensions.conf", "amd.conf")
# Configs of core subsystems we do not use, rendered minimal to keep the log meaningful.
QUIET_FILES = ("cdr.conf", "cel.conf", "features.conf", "acl.conf", "udptl.conf", "ccss.conf",
               "pjproject.conf", "indications.conf")
SUBDIRS = ("etc", "lib", "keys", "data", "agi-bin", "spool", "run", "log")


class RenderError(ValueError):
    """A value would change the meaning of a rendered config; the message names it."""


def _installation_secret(settings: Settings, name: str, configured: str | None) -> str:
    """The configured secret, or one generated once per installation (mode 0600)."""
    return configured or stored_secret(settings.secrets_dir, name)


def ami_secret(settings: Settings) -> str:
    """The AMI secret: ``ami.secret`` or generated into ``home/secrets/ami_secret``."""
    return _installation_secret(settings, "ami_secret", settings.ami.secret)


def agi_secret(settings: Settings) -> str:
    """The secret Asterisk proves to the FastAGI daemon on every request: ``agi.secret`` or
    generated into ``home/secrets/agi_secret``; rendered into extensions.conf (0600)."""
    return _installation_secret(settings, "agi_secret", settings.agi.secret)


def secret_file(settings: Settings) -> Path:
    return settings.secrets_dir / "ami_secret"


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
    for t in settings.all_trunks:
        if (t.username is None) != (t.password is None):
            raise RenderError(f"trunk {t.name}: username and password go together")
    root = AsteriskRoot(settings.asterisk.root)
    run = settings.run_dir
    private_dir(settings.home)
    for sub in SUBDIRS:
        private_dir(run / sub)
    for d in (settings.prompts_dir, settings.recordings_dir):
        private_dir(d)
    # The classic AGI process must see exactly the settings the daemon runs with.
    effective = run / "ivr-effective.json"
    write_private(effective, settings.model_dump_json(indent=2))
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
        finalize=_one_line,
    )
    env.filters["conf"] = _conf
    env.filters["sh"] = lambda v: shlex.quote(str(v))
    env.globals["hostport"] = fields.host_port
    env.globals["uri_host"] = fields.uri_host
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
        "agi_secret": agi_secret(settings),
        "prompts_dir": settings.prompts_dir,
        "agent_dial": settings.agent_dial,
        "dialplans_dir": DIALPLANS_DIR,
        "dialplan_files": dialplan_files(settings),
        "config_path": effective,
        "home": settings.home,
        "agi_bin": agi_entry_point(),
    }
    etc = run / "etc"
    # Every rendered file is private: pjsip.conf holds the trunk password, manager.conf the AMI
    # secret, extensions.conf the AGI secret; Asterisk runs as the same user.
    for name in CONF_FILES:
        write_private(etc / name, env.get_template(name + ".j2").render(**values))
    for name in QUIET_FILES:
        write_private(etc / name, env.get_template("quiet.conf.j2").render(name=name))
    wrapper = run / "agi-bin" / "ivr-agi"
    write_private(wrapper, env.get_template("ivr-agi.sh.j2").render(**values), 0o700)
    return etc / "asterisk.conf"


def _one_line(value: Any) -> Any:
    """Every value a template prints: a line break or control character would start a new
    config line (a section, a key, an #include), so it is an error, never output."""
    if isinstance(value, str | Path):
        bad = fields.CONTROL.search(str(value))
        if bad:
            raise RenderError(f"value {str(value)[:60]!r} holds the control character "
                              f"{bad.group()!r}")
    return value


def _conf(value: Any) -> str:
    try:
        return fields.conf_value(value)
    except fields.FieldError as exc:
        raise RenderError(str(exc)) from None
