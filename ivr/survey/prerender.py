"""Every prompt a campaign can speak, rendered before the first call is dialed.

For each pending contact the script is rendered with that contact's order (product, price ...)
in the contact's voice, including reprompts and the keys-only reprompt, so no call waits for a
synthesis. The texts are produced exactly as :class:`~ivr.survey.engine.SurveyRun` produces them,
so every prompt of a call is a cache hit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from ivr.phone import callee_zones
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from ivr.survey.render import confirmation_texts, render_prompt, render_text
from ivr.survey.script import Script


def script_prompts(script: Script, context: Mapping[str, Any], language: str) -> Iterator[str]:
    d = script.defaults
    for node in script.nodes.values():
        if not node.prompt:
            continue
        main = render_prompt(node, context, language)
        if not main.strip():
            continue
        yield main
        if node.kind != "question":
            continue
        for key in ("noinput", "nomatch"):
            for src in getattr(node, key) or getattr(d, key) or []:
                yield render_text(src, context, language, prompt=main)
        dtmf = d.dtmf_reprompt if node.dtmf_reprompt is None else node.dtmf_reprompt
        if dtmf:
            yield render_text(dtmf, context, language, prompt=main)
        if script.confirm is not None and node.confirm:
            phrases = script.phrases_of(node, language)
            yield from confirmation_texts(script.confirm, phrases, context, language,
                                          script.language).values()


def campaign_prompts(db: sqlite_utils.Database, campaign_id: str, *, platform: str,
                     default_voice: str) -> Iterator[tuple[str, str]]:
    """(text, voice) of every prompt the campaign's pending contacts can hear."""
    camp = db.execute("select script, language from campaigns where id = ?",
                      [campaign_id]).fetchone()
    if camp is None:
        return
    script = load_script(Path(camp[0]))
    language = camp[1] or script.language
    rows = db.execute(
        "select phone, order_id, voice, timezone from contacts where campaign_id = ? "
        "and state in ('pending', 'retry')", [campaign_id]).fetchall()
    for phone, order_id, voice, tz in rows:
        zones = callee_zones(None, tz)  # the stored zones only, as the planner wrote them
        ctx = order_context(db, order_id, phone=phone, platform=platform,
                            timezone=zones[0] if zones else None)
        for text in script_prompts(script, ctx, language):
            yield text, voice or script.meta.voice or default_voice
