"""The survey state machine: runs a script over a :class:`~ivr.survey.dialog.Dialog`.

Deterministic (same answers, same path, same stored results) and independent of the transport.
Every step is written through :class:`ivr.store.CallRecorder` before the next one starts:

* entering a node stores ``current_node`` (and the node's ``set`` fields);
* an answer is stored with ``answer(...)`` the moment it is known, then the intent's result fields
  and the next node with one ``update(...)``;
* "don't call me again" writes the do-not-call entry as soon as the node that says so is entered,
  before the goodbye is spoken.

So a hangup anywhere leaves a consistent partial record, and a retried AGI request for the same
call resumes: it continues at the stored ``current_node``, and when the last stored answer belongs
to that node (the answer was written but not the transition) it takes that answer's transition
instead of asking again. (A script that revisits an answered question would be resumed after it.)
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ivr.fields import channel_value
from ivr.store import CALL_COMPLETED, CALL_ERROR, CALL_HANGUP, CallRecorder, add_dnc, now_iso
from ivr.survey.callback import callback_time
from ivr.survey.dialog import Confirmation, Dialog, DialogHangup, Question
from ivr.survey.render import confirmation_texts, render_prompt, render_text
from ivr.survey.script import BOOL_FIELDS, RESULT_FIELDS, Intent, Node, Script

log = logging.getLogger(__name__)

EndedBy = Literal["end", "transfer", "hangup", "error"]
DncCallback = Callable[[str], None]  # (reason) -> None; writes the number to the DNC list


class SurveyError(Exception):
    """The script cannot continue at run time (e.g. it loops without asking anything)."""


@dataclass
class RunResult:
    ended_by: EndedBy
    outcome: str | None
    node: str | None  # last node run
    path: list[str] = field(default_factory=list)  # nodes run in this request, in order


@dataclass
class _Turn:
    """The answer a transition is computed from (live, or rebuilt from a stored row)."""

    intent: str | None
    dtmf: str | None = None
    transcript: str | None = None


class SurveyRun:
    """One survey conversation on one call.

    ``context``: the order fields (platform, product, price, merchant, host, buyer_name,
    order_time, order_id, phone, ...). ``recorder``: the call's store writer (the row is created
    if the AGI layer has not created it). ``dnc_callback(reason)`` puts the callee on the DNC list;
    by default it writes ``context['phone']`` (or the call row's phone) with ivr.store.add_dnc.
    """

    def __init__(
        self,
        script: Script,
        context: Mapping[str, Any],
        dialog: Dialog,
        recorder: CallRecorder,
        *,
        language: str | None = None,
        dnc_callback: DncCallback | None = None,
        voice: str | None = None,
        timezone: str | None = None,
        clock: Callable[[], datetime] | None = None,
        max_steps: int = 200,
    ) -> None:
        self.script = script
        self.context = dict(context)
        self.dialog = dialog
        self.rec = recorder
        self.language = language or script.language
        self.voice = voice or script.meta.voice
        self.timezone = timezone or self.context.get("timezone") or None
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_steps = max_steps
        self._dnc = dnc_callback
        self.results: dict[str, Any] = {}
        self.outcome: str | None = None
        self.path: list[str] = []
        self._stored_node: str | None = None

    # --- public -------------------------------------------------------------------------------
    async def run(self) -> RunResult:
        """Run (or resume) the survey to its end, a transfer or a hangup."""
        row = self._open_record()
        name: str | None = self._resume_point(row)
        node_name: str | None = name
        try:
            steps = 0
            while name is not None:
                steps += 1
                if steps > self.max_steps:
                    raise SurveyError(f"more than {self.max_steps} steps without an end; "
                                      f"the script loops at node {name!r}")
                node_name = name
                node = self.script.nodes[name]
                self.path.append(name)
                self._enter(name, node)
                if node.kind == "statement":
                    await self._say(render_prompt(node, self.context, self.language), node)
                    name = node.next
                elif node.kind == "question":
                    name = await self._question(name, node)
                elif node.kind == "open":
                    name = await self._open(name, node)
                elif node.kind == "transfer":
                    return await self._transfer(name, node)
                else:
                    return await self._end(name, node)
            raise SurveyError(f"node {node_name!r} has no next node")
        except DialogHangup:
            return self._hung_up(node_name)
        except SurveyError as exc:
            log.error("survey %s stopped: %s", self.script.name, exc)
            self.rec.finish(CALL_ERROR, error=str(exc), outcome=self.outcome or "partial")
            await self._safe_hangup()
            return RunResult("error", self.outcome or "partial", node_name, self.path)

    async def mark_machine(self, cause: str = "", *, hangup: bool = True) -> None:
        """An answering machine picked up (AMD in the dialplan): record it and hang up."""
        self._open_record()
        self.outcome = "machine"
        self.rec.finish(CALL_COMPLETED, outcome="machine",
                        **({"hangup_cause": f"AMD {cause}"} if cause else {}))
        if hangup:
            await self._safe_hangup()

    # --- the record -----------------------------------------------------------------------------
    def _open_record(self) -> dict[str, Any]:
        row = self.rec.get()
        if row is None:
            self.rec.start(script=self.script.name, language=self.language, voice=self.voice,
                           context=self.context, phone=self.context.get("phone"),
                           order_id=self.context.get("order_id"))
            row = self.rec.get() or {}
        else:
            missing = {k: v for k, v in (("script", self.script.name),
                                         ("language", self.language),
                                         ("context", json.dumps(self.context, ensure_ascii=False)))
                       if not row.get(k)}
            if missing:
                self.rec.update(**missing)
        for f in RESULT_FIELDS:
            if row.get(f) is not None:
                self.results[f] = row[f]
        self.outcome = row.get("outcome")
        return row

    def _resume_point(self, row: Mapping[str, Any]) -> str | None:
        cur = row.get("current_node")
        if not cur or cur not in self.script.nodes:
            return self.script.start
        self._stored_node = cur
        node = self.script.nodes[cur]
        answers = self.rec.answers()
        if not answers or answers[-1]["node"] != cur or node.kind not in ("question", "open"):
            return str(cur)
        last = answers[-1]  # answered before the request died: take its transition
        log.info("call %s resumes after the stored answer at %s", self.rec.call_id, cur)
        if node.kind == "open":
            self._store(node.next, {})
            return node.next
        return self._transition(node, _Turn(last["intent"], last["dtmf"], last["transcript"]))

    def _store(self, current: str | None, fields: dict[str, Any]) -> None:
        if current == self._stored_node and not fields:
            return
        self.results.update({k: v for k, v in fields.items() if k in RESULT_FIELDS})
        self.rec.update(current_node=current, **fields)
        self._stored_node = current

    def _enter(self, name: str, node: Node) -> None:
        self._store(name, self._resolve_set(node.set, _Turn(None)))
        if node.dnc:
            reason = f"asked during survey {self.script.name} (node {name})"
            self._write_dnc(reason)

    def _write_dnc(self, reason: str) -> None:
        if self._dnc is not None:
            self._dnc(reason)
            return
        phone = self.context.get("phone") or (self.rec.get() or {}).get("phone")
        if not phone:
            log.error("call %s asked for do-not-call but its phone is unknown", self.rec.call_id)
            return
        add_dnc(self.rec.db, str(phone), reason, "survey")

    def _resolve_set(self, values: Mapping[str, Any], turn: _Turn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, v in values.items():
            if f in BOOL_FIELDS:
                out[f] = int(bool(v))
            elif f == "callback_at":
                out[f] = callback_time(str(v), now=self.clock(), policy=self.script.callback,
                                       timezone=self.timezone, dtmf=turn.dtmf,
                                       transcript=turn.transcript)
            else:
                out[f] = v
        return out

    def _transition(self, node: Node, turn: _Turn) -> str | None:
        """Apply the answer's result fields, store the next node, return it."""
        spec: Intent | None = self.script.intents_of(node).get(turn.intent or "")
        if spec is None:
            target = self.script.fallback_of(node)
            self._store(target, {})
            return target
        self._store(spec.goto, self._resolve_set(spec.set, turn))
        return spec.goto

    # --- node kinds ---------------------------------------------------------------------------
    def _barge_in(self, node: Node) -> bool:
        return self.script.defaults.barge_in if node.barge_in is None else node.barge_in

    async def _say(self, text: str, node: Node) -> None:
        if text:
            await self.dialog.say(text, voice=self.voice, barge_in=self._barge_in(node))

    def _question_for(self, name: str, node: Node, text: str, *, dtmf_only: bool,
                      attempt: int) -> Question:
        intents = self.script.intents_of(node)
        phrases = {} if dtmf_only else {
            i: tuple(ps) for i, ps in self.script.phrases_of(node, self.language).items()}
        return Question(
            node=name, text=text, voice=self.voice, language=self.language, phrases=phrases,
            dtmf={k: i for i, s in intents.items() for k in s.dtmf},
            dtmf_patterns=tuple((s.dtmf_pattern, i) for i, s in intents.items()
                                if s.dtmf_pattern),
            max_digits=node.max_digits,
            timeout_s=node.timeout_s or self.script.defaults.timeout_s,
            barge_in=self._barge_in(node), dtmf_only=dtmf_only, attempt=attempt,
            confirm=None if dtmf_only else self._confirmation(node, phrases),
        )

    def _confirmation(self, node: Node, phrases: Mapping[str, tuple[str, ...]]
                      ) -> Confirmation | None:
        spec = self.script.confirm
        if spec is None or not node.confirm or not phrases:
            return None
        return Confirmation(
            texts=confirmation_texts(spec, phrases, self.context, self.language,
                                     self.script.language),
            phrases={k: tuple(getattr(spec, k).phrases_for(self.language, self.script.language))
                     for k in ("yes", "no")},
            dtmf={key: k for k in ("yes", "no") for key in getattr(spec, k).dtmf},
            timeout_s=spec.timeout_s,
        )

    async def _question(self, name: str, node: Node) -> str | None:
        d = self.script.defaults
        prompt = render_prompt(node, self.context, self.language)
        max_counts = {
            "noinput": d.max_noinput if node.max_noinput is None else node.max_noinput,
            "nomatch": d.max_nomatch if node.max_nomatch is None else node.max_nomatch,
        }
        counts = {"noinput": 0, "nomatch": 0}
        dtmf_text = d.dtmf_reprompt if node.dtmf_reprompt is None else node.dtmf_reprompt
        valid = self.script.intents_of(node)
        asked_at = now_iso()
        text, dtmf_only, tries = prompt, False, 0
        while True:
            tries += 1
            q = self._question_for(name, node, text, dtmf_only=dtmf_only, attempt=tries)
            turn = await self.dialog.ask(q)
            if turn.kind == "hangup":
                raise DialogHangup(f"hangup at {name}")
            intent = turn.intent if turn.kind == "match" and turn.intent in valid else None
            if intent is not None or dtmf_only:
                break
            miss = "noinput" if turn.kind == "noinput" else "nomatch"
            counts[miss] += 1
            if counts[miss] > max_counts[miss]:
                if not dtmf_text:
                    break
                dtmf_only = True
                text = render_text(dtmf_text, self.context, self.language, prompt=prompt)
                continue
            reprompts = getattr(node, miss) or getattr(d, miss)
            text = render_text(reprompts[min(counts[miss], len(reprompts)) - 1], self.context,
                               self.language, prompt=prompt) if reprompts else prompt
        self.rec.answer(
            name, intent=intent, confidence=turn.confidence if intent else 0.0,
            transcript=turn.transcript, dtmf=turn.dtmf, input_mode=turn.input_mode,
            recording=turn.recording, tries=tries, asked_at=asked_at,
            confirmed=int(turn.confirmed) if intent else None,
        )
        self._stored_node = name  # CallRecorder.answer stored it as current_node
        return self._transition(node, _Turn(intent, turn.dtmf, turn.transcript))

    async def _open(self, name: str, node: Node) -> str | None:
        asked_at = now_iso()
        rec = await self.dialog.record(render_prompt(node, self.context, self.language),
                                       voice=self.voice, max_s=node.max_s, node=name,
                                       barge_in=self._barge_in(node))
        heard = bool(rec.path or rec.transcript)
        self.rec.answer(name, intent=None, transcript=rec.transcript or None,
                        recording=rec.path, input_mode="voice" if heard else "none", tries=1,
                        asked_at=asked_at, confidence=None)
        self._stored_node = name
        self._store(node.next, {})
        return node.next

    def _outcome(self, node: Node, default: str) -> str:
        rules = node.outcome
        if rules is None:
            return default
        if isinstance(rules, str):
            return rules
        for rule in rules:
            if all(_matches(self.results.get(f), want) for f, want in rule.when.items()):
                return rule.then
        return default

    async def _end(self, name: str, node: Node) -> RunResult:
        self.outcome = self._outcome(node, "completed")
        self.rec.update(outcome=self.outcome)  # before the goodbye: a hangup keeps it
        await self._say(render_prompt(node, self.context, self.language), node)
        self.rec.finish(CALL_COMPLETED, outcome=self.outcome)
        if node.hangup:
            await self._safe_hangup()
        return RunResult("end", self.outcome, name, self.path)

    async def _transfer(self, name: str, node: Node) -> RunResult:
        self.outcome = self._outcome(node, "transferred")
        self.rec.update(outcome=self.outcome)
        await self._say(render_prompt(node, self.context, self.language), node)
        # Channel variables from order data: each value by its field's validator.
        variables = {var: channel_value(f, self.context.get(f))
                     for var, f in self.script.transfer.variables.items()}
        variables["IVR_CALL_ID"] = self.rec.call_id
        variables.update({k: channel_value(k, render_text(v, self.context, self.language))
                          for k, v in node.variables.items()})
        assert node.target is not None  # validated
        await self.dialog.transfer(node.target, variables)
        self.rec.finish(CALL_COMPLETED, outcome=self.outcome)
        return RunResult("transfer", self.outcome, name, self.path)

    def _hung_up(self, node: str | None) -> RunResult:
        log.info("call %s hung up at %s", self.rec.call_id, node)
        if self.outcome is None:
            self.outcome = "partial"
        self.rec.finish(CALL_HANGUP, outcome=self.outcome)
        return RunResult("hangup", self.outcome, node, self.path)

    async def _safe_hangup(self) -> None:
        with contextlib.suppress(DialogHangup):
            await self.dialog.hangup()


def _matches(value: Any, want: Any) -> bool:
    """Outcome rule test: equal, or one of a list; booleans compare as 0/1."""
    wants = want if isinstance(want, list) else [want]
    norm = [int(w) if isinstance(w, bool) else w for w in wants]
    return value in norm
