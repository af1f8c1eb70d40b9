"""The ``survey`` AGI handler: run the call's survey script through the speech layer.

Which script, language, voice and order come from the call's variables
(:class:`~ivr.call.variables.CallVariables`, set by the dialer), falling back to ``ivr.yaml``. The
answers are heard by voice (AudioSocket + Vosk, DTMF keys too) when a speech model for the survey
language is installed, else by DTMF alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ivr.agi.registry import CallContext, handler
from ivr.call.dtmf_dialog import AgiDtmfDialog
from ivr.call.prompts import prompt_file
from ivr.call.variables import CallVariables
from ivr.config import PROJECT_ROOT, Settings
from ivr.phone import callee_zones
from ivr.speech.tts import default_voice, engine
from ivr.store import add_dnc, now_iso
from ivr.survey.dialog import Dialog
from ivr.survey.engine import SurveyRun
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from ivr.survey.script import Script

log = logging.getLogger(__name__)


def script_path(settings: Settings, name: str | None) -> Path:
    """IVR_SCRIPT may be a path or a file name under surveys/."""
    if not name:
        return Path(settings.survey)
    p = Path(name)
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / "surveys" / name


def choose_voice(settings: Settings, script: Script, language: str, requested: str | None) -> str:
    """The segment's voice if it speaks the survey language, else the script's, else a default."""
    voices = engine(settings).voices
    for candidate in (requested, script.meta.voice):
        if candidate and candidate in voices and voices[candidate].language == language:
            return candidate
        if candidate and candidate not in voices:
            log.warning("voice profile %r is not defined in %s", candidate,
                        settings.speech.voices_dir)
    return default_voice(settings, language)


def call_context(call: CallContext, variables: CallVariables) -> dict[str, Any]:
    zones = callee_zones(variables.phone)
    return order_context(call.db, variables.order_id or None, phone=variables.phone or None,
                         platform=call.settings.platform, timezone=zones[0] if zones else None)


def make_dialog(call: CallContext, language: str, voice: str, source: Path) -> Dialog:
    """Voice and keys when the language's speech model is installed, else keys only."""
    settings = call.settings
    from ivr.call.voice_dialog import voice_dialog_for

    keys = AgiDtmfDialog(
        call.agi, lambda text, v: Path(prompt_file(settings, text, v or voice)),
        recordings_dir=settings.recordings_dir, default_voice=voice)
    return voice_dialog_for(settings, keys, language, voice, str(source),
                            on_turn=lambda row: call.recorder().turn(**row)) or keys


@handler("survey")
async def survey(call: CallContext) -> None:
    """Run the survey script of this call (DTMF and, with a speech model, voice answers)."""
    agi, settings = call.agi, call.settings
    variables = await CallVariables.read(agi.get_variable)
    path = script_path(settings, variables.script)
    script = load_script(path)
    language = variables.language or script.language
    voice = choose_voice(settings, script, language, variables.voice or None)
    rec = call.recorder()
    context = call_context(call, variables)
    # The AGI runs on the answered leg: the survey starts the moment the customer picked up.
    rec.start(channel=agi.channel_name, transport=call.transport, context=context,
              answered_at=now_iso(), **{**variables.call_fields(), "script": script.meta.name,
                                        "language": language, "voice": voice})
    await agi.answer()
    phone = variables.phone
    dialog = make_dialog(call, language, voice, path)
    run = SurveyRun(
        script, context, dialog, rec, language=language, voice=voice,
        dnc_callback=(lambda reason: add_dnc(call.db, phone, reason, "survey")) if phone else None)
    try:
        result = await run.run()
        log.info("call %s survey ended by %s at %s (%s)", call.call_id, result.ended_by,
                 result.node, result.outcome)
        if result.ended_by != "transfer":
            await agi.hangup()
    finally:
        # Recordings are transcribed after the call (also one that failed): nobody waits for a
        # free-form decode.
        from ivr.speech.transcribe import pending, schedule

        if settings.speech.transcribe and pending(call.db, call.call_id):
            schedule(settings, call.call_id)
