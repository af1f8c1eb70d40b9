"""``ivr speech render|voices|prerender``: the TTS commands (the ``speech`` group adds COMMANDS)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ivr.speech.audio import wav_info
from ivr.speech.tts import TtsEngine, TtsError, playable
from ivr.speech.voices import VoiceError, load_voices


def _engine(ctx: click.Context) -> TtsEngine:
    """The engine (and prompt cache) the calls themselves use, so prerendered prompts are hits."""
    from ivr.cli import settings_from
    from ivr.speech.tts import engine

    try:
        return engine(settings_from(ctx))
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("render")
@click.argument("text")
@click.option("--voice", "voice", required=True,
              help="Voice profile name (see `ivr speech voices`).")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Also copy the WAV here.")
@click.pass_context
def render_cmd(ctx: click.Context, text: str, voice: str, out: str | None) -> None:
    """Render TEXT to an 8 kHz WAV (cached) and print its path.

    \b
    Examples:
      ivr speech render "您好，这里是示例平台的客户体验团队。" --voice cmn-calm-female
      ivr speech render "만족하십니까?" --voice ko-friendly-female --out /tmp/q1.wav
    """
    engine = _engine(ctx)
    try:
        path = engine.render(text, voice)
    except TtsError as exc:
        raise click.ClickException(str(exc)) from exc
    info = wav_info(path)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        path = Path(out)
    click.echo(f"{path}  ({info.seconds:.2f} s, {'cache hit' if engine.last_hit else 'rendered'};"
               f" play as {playable(path)})")
    click.echo(f"spoken: {engine.spoken_text(text, voice)}", err=True)


@click.command("voices")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def voices_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the voice profiles (validated against espeak-ng).

    \b
    Example:
      ivr speech voices
    """
    from ivr.cli import settings_from

    directory = settings_from(ctx).speech.voices_dir
    try:
        voices = load_voices(directory)
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        from ivr.cli import echo_json

        echo_json([{"name": p.name, "language": p.language, "espeak": p.espeak_name,
                    "gender": p.gender, "rate": p.rate, "pitch": p.pitch, "volume": p.volume,
                    "description": p.description} for p in voices.values()])
        return
    table = Table(title=f"voices in {directory}")
    for col in ("name", "language", "espeak", "gender", "rate", "pitch", "volume"):
        table.add_column(col, no_wrap=True)
    table.add_column("description")
    for p in voices.values():
        table.add_row(p.name, p.language, p.espeak_name, p.gender, str(p.rate), str(p.pitch),
                      f"{p.volume:g}", p.description)
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze names into 80 columns
        console = Console(width=160)
    console.print(table)


@click.command("prerender")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def prerender_cmd(ctx: click.Context, file: str, no_progress: bool) -> None:
    """Render every {"text","voice"} line of FILE.jsonl ahead of a campaign.

    \b
    Examples:
      ivr speech prerender prompts.jsonl
      ivr speech prerender prompts.jsonl --no-progress

    \b
    A line of prompts.jsonl:
      {"text": "您对这次购物满意吗？", "voice": "cmn-calm-female"}
    """
    items: list[tuple[str, str]] = []
    for n, line in enumerate(Path(file).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            items.append((str(obj["text"]), str(obj["voice"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise click.ClickException(f"{file}:{n}: expected {{\"text\": ..., \"voice\": ...}}"
                                       f" ({exc})") from exc
    report = _engine(ctx).prerender(items, progress=not no_progress)
    click.echo(f"{len(report.paths)} prompts ready: {report.rendered} rendered, "
               f"{report.cached} cached, {len(report.errors)} failed")
    for text, voice, msg in report.errors:
        click.echo(f"  FAILED {voice}: {text[:40]!r}: {msg}", err=True)
    if report.errors:
        ctx.exit(1)


COMMANDS: list[click.Command] = [render_cmd, voices_cmd, prerender_cmd]
