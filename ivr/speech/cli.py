"""``ivr speech``: install and list speech models, check words, decode a recording."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import click

from ivr.cli import echo_json, json_option, settings_from
from ivr.config import PROJECT_ROOT
from ivr.speech import install as inst
from ivr.speech.grammar import GrammarError, question_grammar
from ivr.speech.models import ModelError, get_model, looks_like_model, spec_path


@click.group()
def speech() -> None:
    """Speech recognition models and tools (Vosk), and prompt rendering (TTS).

    \b
    Examples:
      ivr speech models
      ivr speech words --lang ko 네 아니요 만족
      ivr speech recognize answer.wav --lang ko --phrases 'yes=네,no=아니요'
      ivr speech render "请问您对这次购买满意吗？" --voice cmn-calm-female
    """


@speech.command("install-model")
@click.option("--lang", required=True, help="Survey language the model is for (e.g. cmn, ko).")
@click.option("--url", help="Download the model zip from this URL.")
@click.option("--zip", "zip_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Install from a local model zip.")
@click.option("--sha256", help="Expected sha256 of the zip (known official models: built in).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Install directory (default: models/<zip name> in the project).")
@click.option("--force", is_flag=True, help="Replace an existing model directory.")
def install_model(lang: str, url: str | None, zip_file: Path | None, sha256: str | None,
                  dest: Path | None, force: bool) -> None:
    """Verify and unpack a Vosk model zip, then print the ivr.yaml line for it.

    \b
    Example:
      ivr speech install-model --lang cmn --zip vosk-model-small-cn-0.22.zip
    """
    if bool(url) == bool(zip_file):
        raise click.UsageError("give exactly one of --url or --zip")
    name = zip_file.name if zip_file else str(url).rstrip("/").rsplit("/", 1)[-1]
    target = dest or inst.default_dest(PROJECT_ROOT / "models", name)
    try:
        if zip_file:
            done = inst.install_zip(zip_file, target, lang, sha256=sha256, force=force)
        else:
            done = inst.install_url(str(url), target, lang, sha256=sha256, force=force)
    except inst.InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"installed {lang} model into {done.path} (sha256 {done.sha256})")
    click.echo("add to ivr.yaml:")
    click.echo(done.config_line())


@speech.command("models")
@json_option
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List the configured models per language and whether they are installed.

    \b
    Example:
      ivr speech models             configured model per language, installed or MISSING
    """
    settings = settings_from(ctx)
    found = []
    for lang, spec in sorted(settings.speech.models.items()):
        path = spec_path(spec)
        found.append({"language": lang, "spec": spec, "path": str(path),
                      "problem": looks_like_model(path)})
    if as_json:
        echo_json([{**m, "installed": m["problem"] is None} for m in found])
        return
    for m in found:
        state = "installed" if m["problem"] is None else f"MISSING ({m['problem']})"
        click.echo(f"{m['language']:5} {m['spec']:40} {m['path']}  {state}")


@speech.command("words")
@click.option("--lang", required=True)
@click.argument("words", nargs=-1, required=True)
@click.pass_context
def words(ctx: click.Context, lang: str, words: tuple[str, ...]) -> None:
    """Check which words are in the model's vocabulary (grammar phrases need them).

    \b
    Example:
      ivr speech words --lang ko 네 아니요 만족
    """
    model = _model(ctx, lang)
    for w in words:
        click.echo(f"{w}\t{'yes' if model.has_word(w) else 'NO'}")


@speech.command("recognize")
@click.argument("wav", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lang", required=True)
@click.option("--phrases", required=True,
              help="intent=phrase,... e.g. 'yes=네,yes=예,no=아니요' (words space-separated).")
@click.option("--no-denoise", is_flag=True, help="Do not subtract the line noise first.")
@click.pass_context
def recognize(ctx: click.Context, wav: Path, lang: str, phrases: str, no_denoise: bool) -> None:
    """Decode a mono 16-bit WAV as one answer, exactly as a real call's turn does (noise
    suppression, the question's grammar from question_grammar, the language's confidence model),
    and print the hypothesis as JSON (reason, confidence and features say why it was rejected).

    \b
    Example (telephone path: 8 kHz mu-law round trip, as the IVR hears it via AudioSocket):
      sox in.wav -r 8000 -c 1 -t ul tmp.ul && sox -r 8000 -c 1 -t ul tmp.ul -b 16 tel.wav
      ivr speech recognize tel.wav --lang ko --phrases 'yes=네,no=아니요'
    """
    from ivr.speech.recognizer import recognize_pcm

    intents: dict[str, list[str]] = {}
    for part in phrases.split(","):
        intent, sep, phrase = part.partition("=")
        if not sep or not intent.strip() or not phrase.strip():
            raise click.BadParameter(f"{part!r} is not intent=phrase", param_hint="--phrases")
        intents.setdefault(intent.strip(), []).append(phrase.strip())
    model = _model(ctx, lang)
    try:
        grammar = question_grammar(intents, model, language=lang, question="(command line)",
                                   source="--phrases")
    except GrammarError as exc:
        raise click.ClickException(str(exc)) from exc
    with wave.open(str(wav), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise click.ClickException(f"{wav}: need mono 16-bit PCM WAV "
                                       f"(try: sox {wav} -r 8000 -c 1 -b 16 out.wav)")
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    hyp, events = recognize_pcm(model, grammar, intents, pcm, sample_rate=rate,
                                denoise=not no_denoise)
    click.echo(json.dumps({
        "intent": hyp.intent, "confidence": round(hyp.confidence, 3),
        "transcript": hyp.transcript, "reason": hyp.reason, "best_intent": hyp.best_intent,
        "alternatives": [[a.text, round(a.score, 2), a.intent] for a in hyp.alternatives],
        "features": {k: round(v, 3) for k, v in hyp.features.items()},
        "events": [[e.value, ms] for e, ms in events],
    }, ensure_ascii=False))


@speech.command("transcribe")
@click.argument("wavs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lang", required=True)
@click.pass_context
def transcribe(ctx: click.Context, wavs: tuple[Path, ...], lang: str) -> None:
    """Free-form transcript of recordings (mono 16-bit WAV), one line per file.

    \b
    Example:
      ivr speech transcribe var/recordings/1700000000.12-suggestions.wav --lang ko
    """
    from ivr.speech import transcribe as tr

    model = _model(ctx, lang)
    if not tr.can_transcribe(model):
        raise click.ClickException(f"the {lang} model at {model.path} has no language model "
                                   f"for free-form decoding (graph/Gr.fst or HCLG.fst)")
    for wav in wavs:
        try:
            click.echo(f"{wav}\t{tr.transcribe_wav(model, wav)}")
        except tr.TranscribeError as exc:
            raise click.ClickException(str(exc)) from exc


@speech.command("transcribe-pending")
@click.option("--call", "call_id", help="Only this call (default: every pending answer).")
@click.pass_context
def transcribe_pending(ctx: click.Context, call_id: str | None) -> None:
    """Transcribe recorded open answers that have no transcript yet (the survey does this after
    each call; this catches up after a restart or once a model is installed).

    \b
    Example:
      ivr speech transcribe-pending
    """
    from ivr.speech import transcribe as tr
    from ivr.store import open_db

    settings = settings_from(ctx)
    counts = tr.transcribe_pending(open_db(settings.db_path), tr.models_from(settings), call_id,
                                   on_error=lambda msg: click.echo(msg, err=True))
    click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
    if counts["failed"]:
        raise click.ClickException(f"{counts['failed']} recording(s) could not be read "
                                   f"(listed above); they stay pending")


def _model(ctx: click.Context, lang: str):
    try:
        return get_model(lang, settings_from(ctx))
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc


# The TTS commands live in tts_cli.py (another module, same group).
try:
    from ivr.speech.tts_cli import COMMANDS
except ImportError:
    COMMANDS = []
for _cmd in COMMANDS:
    speech.add_command(_cmd)
