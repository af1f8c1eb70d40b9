"""The survey script model: what an operator writes in a survey YAML file.

A script is a graph of *nodes*. Each node has a ``kind``:

``statement``  say the prompt, continue at ``next``
``question``   ask, recognise one of the node's ``intents`` (phrases per language and DTMF keys)
               or a global intent, apply the intent's ``set`` and continue at its ``goto``;
               no-input / no-match reprompt up to the limits, then one DTMF-only reprompt, then
               ``fallback``
``open``       ask, record (and transcribe when the dialog can) the answer, continue at ``next``
``transfer``   say the prompt, hand the call to an agent ``target`` with channel variables
``end``        say the prompt, record the ``outcome``, hang up

Loading and validation (with file/line/node in every message) live in :mod:`ivr.survey.loader`;
this module only holds the shapes and the vocabularies (kinds, outcomes, result fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Kind = Literal["statement", "question", "open", "transfer", "end"]
TERMINAL_KINDS = frozenset({"transfer", "end"})

# Terminal outcomes a script may record. "partial": the survey ended without its answers
# (no input after every reprompt, or the callee hung up before the end).
OUTCOMES = (
    "completed", "recovered", "declined", "opted_out", "transferred", "callback_requested",
    "machine", "partial",
)

# First-class result fields of the calls row that a script may set (report columns).
BOOL_FIELDS = ("satisfied", "would_buy_again")
RESULT_FIELDS = (
    "satisfied", "remedy_offered", "remedy_accepted", "reason", "would_buy_again", "callback_at",
)
REMEDIES = ("refund", "voucher", "none")

# callback_at values: a named moment, the DTMF/spoken hour, or a relative delay like "+2h".
CALLBACK_SPECS = ("default", "tonight", "tomorrow", "hour")
CALLBACK_RELATIVE = re.compile(r"^\+(\d+)([mhd])$")

DTMF_KEY = re.compile(r"^[0-9*#]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intent(_Strict):
    """One answer a question expects."""

    # Phrases per language ({"cmn": ["满意", "很 满意"]}); a plain list means the script language.
    # Words are space-separated vocabulary words of the speech model (Chinese too).
    phrases: dict[str, list[str]] | list[str] = Field(default_factory=list)
    # DTMF keys that mean this intent ("1" or ["1", "#"]).
    dtmf: list[str] = Field(default_factory=list)
    # A regular expression over the typed digits (e.g. a two-digit hour) for free DTMF entry.
    dtmf_pattern: str | None = None
    goto: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # for people reading the graph

    @field_validator("dtmf", mode="before")
    @classmethod
    def _dtmf(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str | int):
            return [str(v)]
        if isinstance(v, list):
            return [str(x) if isinstance(x, int) else x for x in v]
        return v

    def phrases_for(self, language: str, script_language: str) -> list[str]:
        if isinstance(self.phrases, list):
            return list(self.phrases) if language == script_language else []
        return list(self.phrases.get(language, []))


class OutcomeRule(_Strict):
    """``when`` every listed result field equals (or is one of) the values -> ``then``."""

    when: dict[str, Any] = Field(default_factory=dict)
    then: str


class Node(_Strict):
    kind: Kind
    prompt: str | dict[str, str] = ""
    label: str | None = None
    next: str | None = None  # statement, open
    # question
    intents: dict[str, Intent] = Field(default_factory=dict)
    globals: bool | list[str] = True  # which global intents are heard here
    noinput: list[str] | None = None  # reprompt templates ({{ prompt }} = the question)
    nomatch: list[str] | None = None
    max_noinput: int | None = Field(default=None, ge=0, le=10)
    max_nomatch: int | None = Field(default=None, ge=0, le=10)
    dtmf_reprompt: str | None = None  # one DTMF-only try after the limits ("" = skip it)
    fallback: str | None = None  # where to go when nothing was understood
    max_digits: int = Field(default=1, ge=1, le=20)
    timeout_s: float | None = Field(default=None, gt=0, le=120)
    barge_in: bool | None = None
    # open
    max_s: float = Field(default=30, gt=0, le=600)
    # any kind: side effects on entering the node
    set: dict[str, Any] = Field(default_factory=dict)
    dnc: bool = False
    # end / transfer
    outcome: str | list[OutcomeRule] | None = None
    target: str | None = None  # transfer: agent queue / extension in the agent context
    variables: dict[str, str] = Field(default_factory=dict)  # transfer: extra channel variables
    hangup: bool = True  # end
    confirm: bool = True  # question: offer the script's confirmation for unsure voice answers


# Fields that mean something per kind (others are reported as misplaced).
COMMON_FIELDS = {"kind", "prompt", "label", "set", "dnc", "barge_in"}
KIND_FIELDS: dict[str, set[str]] = {
    "statement": COMMON_FIELDS | {"next"},
    "question": COMMON_FIELDS | {
        "intents", "globals", "noinput", "nomatch", "max_noinput", "max_nomatch",
        "dtmf_reprompt", "fallback", "max_digits", "timeout_s", "confirm",
    },
    "open": COMMON_FIELDS | {"next", "max_s"},
    "transfer": COMMON_FIELDS | {"target", "variables", "outcome"},
    "end": COMMON_FIELDS | {"outcome", "hangup"},
}


class Meta(_Strict):
    name: str
    language: str
    voice: str | None = None  # default TTS voice profile (voices/*.yaml, e.g. "cmn-calm-male")
    fields: list[str] = Field(default_factory=list)  # order fields the prompts need
    description: str = ""


class Defaults(_Strict):
    timeout_s: float = Field(default=6.0, gt=0, le=120)
    max_noinput: int = Field(default=2, ge=0, le=10)
    max_nomatch: int = Field(default=2, ge=0, le=10)
    barge_in: bool = True
    noinput: list[str] = Field(default_factory=lambda: ["{{ prompt }}"])
    nomatch: list[str] = Field(default_factory=lambda: ["{{ prompt }}"])
    dtmf_reprompt: str = ""  # "" = no DTMF-only step
    fallback: str | None = None


class Confirm(_Strict):
    """Explicit confirmation of an unsure voice answer ("배송 문제, 맞으세요?").

    When the recogniser's best phrase is plausible but below the acceptance threshold, the caller
    is asked ``prompt`` (``{{ answer }}`` = the phrase heard) and a clear yes stores the answer;
    no, silence or anything else asks the question again. Yes/no are short, distinct words the
    small models hear well, so this turns unsure answers into trusted ones.
    """

    prompt: str | dict[str, str]
    yes: Intent
    no: Intent
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    def prompt_for(self, language: str, script_language: str) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        return self.prompt.get(language) or self.prompt.get(script_language, "")


class CallbackPolicy(_Strict):
    timezone: str = "Asia/Shanghai"  # used when the contact has none
    default_delay_min: int = Field(default=120, ge=1)
    tonight_hour: int = Field(default=20, ge=0, le=23)
    tomorrow_hour: int = Field(default=10, ge=0, le=23)


class TransferPolicy(_Strict):
    # Order context copied into channel variables on every transfer: variable -> order field.
    variables: dict[str, str] = Field(default_factory=lambda: {
        "IVR_ORDER_ID": "order_id", "IVR_PRODUCT": "product", "IVR_PRICE": "price",
        "IVR_PLATFORM": "platform", "IVR_MERCHANT": "merchant", "IVR_HOST": "host",
        "IVR_BUYER_NAME": "buyer_name", "IVR_ORDER_TIME": "order_time",
    })


@dataclass
class Script:
    """A validated script. ``lines`` maps YAML paths to 1-based line numbers (for messages)."""

    path: Path
    meta: Meta
    start: str
    defaults: Defaults
    callback: CallbackPolicy
    transfer: TransferPolicy
    global_intents: dict[str, Intent]
    nodes: dict[str, Node]
    confirm: Confirm | None = None
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def language(self) -> str:
        return self.meta.language

    def active_globals(self, node: Node) -> dict[str, Intent]:
        """The global intents a question node listens for."""
        if node.kind != "question" or node.globals is False:
            return {}
        if node.globals is True:
            return dict(self.global_intents)
        return {k: v for k, v in self.global_intents.items() if k in node.globals}

    def intents_of(self, node: Node) -> dict[str, Intent]:
        """Node intents first, then the global intents heard at this node."""
        out = dict(self.active_globals(node))
        out.update(node.intents)
        return out

    def phrases_of(self, node: Node, language: str) -> dict[str, list[str]]:
        """intent -> phrases in ``language`` the node listens for (node intents + globals);
        intents without phrases in that language are left out (keys only)."""
        out: dict[str, list[str]] = {}
        for name, spec in self.intents_of(node).items():
            phrases = spec.phrases_for(language, self.language)
            if phrases:
                out[name] = phrases
        return out

    def fallback_of(self, node: Node) -> str | None:
        return node.fallback or self.defaults.fallback

    def line(self, *path: Any) -> int:
        """Line of the deepest known prefix of ``path`` (0 if unknown)."""
        for n in range(len(path), 0, -1):
            hit = self.lines.get(tuple(path[:n]))
            if hit:
                return hit
        return 0

    def targets(self, name: str) -> list[tuple[str, str]]:
        """(label, target) of every transition leaving node ``name``."""
        node = self.nodes[name]
        out: list[tuple[str, str]] = []
        if node.next:
            out.append(("next", node.next))
        for intent, spec in self.intents_of(node).items():
            if spec.goto:
                out.append((intent, spec.goto))
        fb = self.fallback_of(node) if node.kind == "question" else None
        if fb:
            out.append(("fallback", fb))
        return out
