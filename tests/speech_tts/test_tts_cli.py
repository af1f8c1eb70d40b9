from __future__ import annotations

import json

import click
from click.testing import CliRunner

from ivr.speech.audio import wav_info
from ivr.speech.tts_cli import COMMANDS


def speech_group() -> click.Group:
    group = click.Group("speech")
    for cmd in COMMANDS:
        group.add_command(cmd)
    return group


def invoke(tmp_path, monkeypatch, *args):
    monkeypatch.setenv("IVR_CONFIG", "")
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(speech_group(), list(args), catch_exceptions=False)


def test_commands_are_named():
    assert sorted(c.name for c in COMMANDS) == ["prerender", "render", "voices"]


def test_render_and_voices(tmp_path, monkeypatch):
    out = tmp_path / "x.wav"
    res = invoke(tmp_path, monkeypatch, "render", "您好，39.9元", "--voice", "cmn-calm-male",
                 "--out", str(out))
    assert res.exit_code == 0, res.output
    assert wav_info(out).is_asterisk_ready
    assert "三十九点九元" in res.output  # the spoken form is shown
    res = invoke(tmp_path, monkeypatch, "render", "hi", "--voice", "nope")
    assert res.exit_code != 0 and "unknown voice 'nope'" in res.output
    res = invoke(tmp_path, monkeypatch, "voices")
    assert res.exit_code == 0 and "cmn+f3" in res.output and "ko-calm-male" in res.output


def test_prerender_file(tmp_path, monkeypatch):
    jsonl = tmp_path / "p.jsonl"
    lines = [{"text": f"您在平台购买的{p}元的商品", "voice": "cmn-friendly-female"}
             for p in (9.9, 19.9)]
    jsonl.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    res = invoke(tmp_path, monkeypatch, "prerender", str(jsonl), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "2 prompts ready: 2 rendered, 0 cached, 0 failed" in res.output
    jsonl.write_text('{"text": "x"}\n')
    res = invoke(tmp_path, monkeypatch, "prerender", str(jsonl))
    assert res.exit_code != 0 and "p.jsonl:1" in res.output
