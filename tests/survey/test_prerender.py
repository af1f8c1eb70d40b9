"""Prerendered campaign prompts are exactly the texts a call speaks (so every prompt is a hit)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ivr.config import PROJECT_ROOT
from ivr.store import CallRecorder, open_db
from ivr.survey.engine import SurveyRun
from ivr.survey.loader import load_script
from ivr.survey.orders import order_context
from ivr.survey.prerender import campaign_prompts
from ivr.survey.simulate import ScriptedDialog

SCRIPT = PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"


def test_every_spoken_prompt_was_prerendered(tmp_path: Path) -> None:
    db = open_db(tmp_path / "ivr.db")
    db["orders"].insert({"order_id": "A1", "phone": "+8613800000001", "product": "婴儿湿巾",
                         "category": "baby", "price": 39.9, "merchant": "好妈妈旗舰店",
                         "host": "小李", "order_time": "2026-11-20T12:15:00+00:00"})
    db["campaigns"].insert({"id": "c1", "name": "c", "script": str(SCRIPT), "language": "cmn"})
    db["contacts"].insert({"campaign_id": "c1", "phone": "+8613800000001", "order_id": "A1",
                           "voice": "cmn-calm-male", "timezone": "Asia/Shanghai",
                           "state": "pending"})
    items = set(campaign_prompts(db, "c1", platform="快购", default_voice="x"))
    assert items and all(voice == "cmn-calm-male" for _, voice in items)
    texts = {t for t, _ in items}
    assert any("婴儿湿巾" in t for t in texts)
    # Unhappy, silence once (reprompt), then keys: refund, quality, (suggestion), buy again.
    dialog = ScriptedDialog(["2", "-", "1", "1", "-", "1"])
    ctx = order_context(db, "A1", phone="+8613800000001", platform="快购",
                        timezone="Asia/Shanghai")
    run = SurveyRun(load_script(SCRIPT), ctx, dialog, CallRecorder(db, "call-1"),
                    language="cmn", dnc_callback=lambda reason: None)
    asyncio.run(run.run())
    spoken = [line.split(": ", 1)[1] for line in dialog.log if line.startswith("  IVR")]
    assert spoken and all(text in texts for text in spoken), set(spoken) - texts
