"""Dialogs without a phone: a script author scripts or types the callee's answers.

An answer token is resolved against the question being asked:

``-`` (or an empty line)  no input (silence)
``!``                     the callee hangs up
``?``                     something the recogniser does not understand (no match)
an intent name            that intent, as if spoken (e.g. ``unsatisfied``, ``opt_out``)
digits / ``*`` / ``#``    DTMF keys (``1``, ``20``)
anything else             a transcript, matched against the question's phrases ("不满意")

For an open question the token is the transcript of what the callee says (``-`` = nothing).
Every prompt and answer is appended to :attr:`TextDialog.log`, which is what ``ivr simulate``
prints: the path a call takes through the script.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ivr.survey.dialog import DialogHangup, Question, Recording, TurnResult

_DIGITS = re.compile(r"^[0-9*#]+$")


def resolve_token(question: Question, token: str) -> TurnResult:
    """Turn one scripted/typed answer into the result a real dialog would return."""
    token = token.strip()
    if token in ("", "-"):
        return TurnResult("noinput")
    if token == "!":
        return TurnResult("hangup")
    if token == "?":
        return TurnResult("nomatch", transcript="?", input_mode="voice")
    if _DIGITS.match(token):
        intent = question.match_dtmf(token)
        return TurnResult("match" if intent else "nomatch", intent=intent,
                          confidence=1.0 if intent else 0.0, dtmf=token, input_mode="dtmf")
    if token in question.intents:
        phrases = question.phrases.get(token)
        if phrases and not question.dtmf_only:
            return TurnResult("match", intent=token, confidence=1.0, transcript=phrases[0],
                              input_mode="voice")
        # An intent without phrases here (or DTMF-only): answer with its key, if it has one.
        key = next((k for k, i in question.dtmf.items() if i == token), None)
        if key is not None:
            return TurnResult("match", intent=token, confidence=1.0, dtmf=key, input_mode="dtmf")
        return TurnResult("nomatch", transcript=token, input_mode="voice")
    intent = question.match_text(token)
    return TurnResult("match" if intent else "nomatch", intent=intent,
                      confidence=1.0 if intent else 0.0, transcript=token, input_mode="voice")


class TextDialog:
    """Base of the text dialogs: answers come from :meth:`next_answer`."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.log: list[str] = []
        self.echo = echo
        self.transfers: list[tuple[str, dict[str, str]]] = []
        self.hung_up = False

    def next_answer(self, prompt: str) -> str | None:  # None: the callee is gone
        raise NotImplementedError

    def _out(self, line: str) -> None:
        self.log.append(line)
        if self.echo is not None:
            self.echo(line)

    async def say(self, text: str, *, voice: str | None, barge_in: bool) -> None:
        self._out(f"  IVR: {text}")

    async def ask(self, question: Question) -> TurnResult:
        mode = " [DTMF only]" if question.dtmf_only else ""
        self._out(f"  IVR ({question.node}, try {question.attempt}){mode}: {question.text}")
        token = self.next_answer(f"{question.node}> ")
        if token is None:
            self._out("  caller: (hangs up)")
            raise DialogHangup(question.node)
        result = resolve_token(question, token)
        if result.kind == "hangup":
            self._out("  caller: (hangs up)")
            raise DialogHangup(question.node)
        shown = result.dtmf or result.transcript or "(silence)"
        got = f"-> {result.intent}" if result.intent else f"-> {result.kind}"
        self._out(f"  caller: {shown} {got}")
        return result

    async def record(self, text: str, *, voice: str | None, max_s: float, node: str,
                     barge_in: bool = True) -> Recording:
        self._out(f"  IVR ({node}, recording up to {max_s:g}s): {text}")
        token = self.next_answer(f"{node} (open answer)> ")
        if token is None or token.strip() == "!":
            self._out("  caller: (hangs up)")
            raise DialogHangup(node)
        said = token.strip()
        if said in ("", "-"):
            self._out("  caller: (silence)")
            return Recording(None, None)
        self._out(f"  caller: {said}")
        return Recording(None, said)

    async def transfer(self, target: str, variables: Mapping[str, str]) -> None:
        self.transfers.append((target, dict(variables)))
        shown = ", ".join(f"{k}={v}" for k, v in variables.items())
        self._out(f"  -> transferred to {target} ({shown})")

    async def hangup(self) -> None:
        self.hung_up = True
        self._out("  -> IVR hangs up")


class ScriptedDialog(TextDialog):
    """Answers from a list; when it runs out, the callee hangs up."""

    def __init__(self, answers: Iterable[str], echo: Callable[[str], None] | None = None) -> None:
        super().__init__(echo)
        self.answers = list(answers)
        self.used = 0

    def next_answer(self, prompt: str) -> str | None:
        if self.used >= len(self.answers):
            return None
        self.used += 1
        return self.answers[self.used - 1]


class TerminalDialog(TextDialog):
    """Answers typed by a person (``read`` is ``input`` by default; EOF = hangup)."""

    def __init__(self, read: Callable[[str], str] = input,
                 echo: Callable[[str], None] | None = print) -> None:
        super().__init__(echo)
        self.read = read

    def next_answer(self, prompt: str) -> str | None:
        try:
            return self.read(prompt)
        except EOFError:
            return None


def split_answers(text: str) -> list[str]:
    """``"1,2,refund, 不满意"`` -> tokens (commas separate; spaces inside phrases stay)."""
    return [t.strip() for t in text.split(",")] if text.strip() else []
