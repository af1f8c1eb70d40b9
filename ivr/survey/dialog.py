"""The port between the survey engine and a transport: what the engine says, asks and records.

The engine never sees Asterisk, audio or ASR. A :class:`Dialog` speaks text, asks a
:class:`Question` and returns a :class:`TurnResult`, records open answers, transfers and hangs up.
Implementations: :class:`ivr.call.dtmf_dialog.AgiDtmfDialog` (real calls, DTMF answers),
:mod:`ivr.survey.simulate` (scripted or typed answers), and the voice dialog (AudioSocket + ASR).

A hangup is reported either by raising :class:`DialogHangup` from any method or by returning a
``TurnResult(kind="hangup")`` from :meth:`Dialog.ask`; the engine treats both alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

TurnKind = Literal["match", "nomatch", "noinput", "hangup"]
InputMode = Literal["voice", "dtmf", "none"]


class DialogHangup(Exception):
    """The callee is gone; the engine stops and keeps what was recorded so far."""


@dataclass(frozen=True)
class Confirmation:
    """How to confirm an unsure voice answer of a question (see ivr.survey.script.Confirm)."""

    texts: Mapping[str, str]  # phrase heard (whitespace-collapsed) -> prompt asking about it
    phrases: Mapping[str, tuple[str, ...]]  # "yes" / "no" -> phrases
    dtmf: Mapping[str, str]  # key -> "yes" / "no"
    timeout_s: float = 5.0


@dataclass(frozen=True)
class Question:
    """Everything a dialog needs to ask one question (one try)."""

    node: str
    text: str  # rendered prompt (or reprompt) to speak
    voice: str | None
    language: str
    # intent -> phrases (space-separated vocabulary words); the grammar. Empty when dtmf_only.
    phrases: Mapping[str, tuple[str, ...]]
    dtmf: Mapping[str, str]  # DTMF key(s) -> intent
    dtmf_patterns: tuple[tuple[str, str], ...] = ()  # (regex over typed digits, intent)
    max_digits: int = 1
    timeout_s: float = 6.0
    barge_in: bool = True
    dtmf_only: bool = False  # after the reprompt limits: keys only, no speech recognition
    attempt: int = 1  # 1 = first time asked
    confirm: Confirmation | None = None  # voice answers the recogniser is unsure of

    @property
    def intents(self) -> tuple[str, ...]:
        names = dict.fromkeys([*self.phrases, *self.dtmf.values(),
                               *(i for _p, i in self.dtmf_patterns)])
        return tuple(names)

    def match_dtmf(self, digits: str) -> str | None:
        """Intent of the typed ``digits`` (exact key first, then the patterns)."""
        digits = digits.strip()
        if not digits:
            return None
        hit = self.dtmf.get(digits)
        if hit is not None:
            return hit
        for pattern, intent in self.dtmf_patterns:
            if re.fullmatch(pattern, digits):
                return intent
        return None

    def match_text(self, text: str) -> str | None:
        """Intent of a transcript: an exact phrase, else the longest phrase it contains.

        Spaces are ignored in the containment test so typed Chinese ("不满意") matches the
        space-separated phrase ("不 满意"). Ambiguous text (two intents' phrases of the same
        length) is no match.
        """
        norm = " ".join(text.split())
        if not norm or self.dtmf_only:
            return None
        squashed = norm.replace(" ", "")
        best: tuple[int, str] | None = None
        tie = False
        for intent, phrases in self.phrases.items():
            for phrase in phrases:
                p = " ".join(phrase.split())
                if p == norm:
                    return intent
                ps = p.replace(" ", "")
                if ps and ps in squashed:
                    if best is None or len(ps) > best[0]:
                        best, tie = (len(ps), intent), False
                    elif len(ps) == best[0] and best[1] != intent:
                        tie = True
        return None if best is None or tie else best[1]


@dataclass(frozen=True)
class TurnResult:
    """What happened on one try of a question."""

    kind: TurnKind
    intent: str | None = None
    confidence: float = 0.0
    transcript: str | None = None
    dtmf: str | None = None
    input_mode: InputMode = "none"
    recording: str | None = None  # path of the caller's audio for this turn, if kept
    confirmed: bool = False  # an unsure voice answer the caller confirmed with a yes
    extra: dict[str, object] = field(default_factory=dict)


class Recording(NamedTuple):
    """An open answer: where the audio is and what the recogniser made of it (if anything)."""

    path: str | None
    transcript: str | None


class Dialog(Protocol):
    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        """Speak ``text`` (a statement, a goodbye)."""

    async def ask(self, question: Question) -> TurnResult:
        """Speak ``question.text`` and return the caller's answer for this one try."""

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        """Speak ``text``, then record the caller for at most ``max_s`` seconds."""

    async def transfer(self, target: str, variables: Mapping[str, str]) -> None:
        """Hand the call to an agent ``target``; ``variables`` go onto the channel."""

    async def hangup(self) -> None:
        """End the call."""
