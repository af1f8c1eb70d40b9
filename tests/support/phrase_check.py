"""Is a spoken answer heard reliably on a real call? Check it offline before a call relies on it.

A real-call test whose customer speaks an answer the recogniser rejects fails in a confusing way:
the IVR reprompts while the planned customer goes on to the next answer. So a (phrase, voice,
speed) combination is checked first, the way a call hears it: espeak-ng speaks the phrase, it goes
through the telephone path (8 kHz, mu-law and back, as sipp -> Asterisk -> AudioSocket do), and is
decoded as a real turn (the question's grammar of node intents + globals, noise suppression,
the n-best phrase choice and the confidence model, the production endpoint). Where the speech
starts within the 20 ms frame grid changes what the recogniser sees and varies from call to call,
so the audio is decoded at ``offsets`` start phases
(0-19 ms of prepended silence); a combination counts as reliable when (nearly) every phase gives
the right intent.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import ivr.speech.confidence
import ivr.speech.denoise
import ivr.speech.grammar
import ivr.speech.intents
import ivr.speech.recognizer
from ivr.speech.confidence import confidence_for
from ivr.speech.grammar import question_grammar
from ivr.speech.models import LoadedModel
from ivr.speech.recognizer import recognize_pcm
from ivr.survey.script import Node, Script

RATE = 8000
LEAD_MS = 300  # silence before the speech (the line is quiet after the prompt)
TAIL_MS = 1200  # silence after it, longer than any endpoint
HEADROOM = 0.03  # confidence above the threshold a reliable answer needs offline
# The customer voice of the real-call tests (measured: see tests/telephony/test_voice_calls.py).
DEFAULT_COMBOS: tuple[tuple[str, int], ...] = (("ko+f3", 150),)
# Results cached by the caller (e.g. pytest's cache) are keyed by everything that decides them,
# including the recogniser's code, so a change there re-runs the check.
_CODE: tuple[ModuleType, ...] = (ivr.speech.grammar, ivr.speech.intents, ivr.speech.recognizer,
                                 ivr.speech.confidence, ivr.speech.denoise)
Cache = MutableMapping[str, list[str | None]]


@dataclass(frozen=True)
class PhraseCheck:
    """How often ``phrase`` spoken by ``voice`` at ``wpm`` was heard as ``intent``."""

    node: str
    intent: str
    phrase: str
    voice: str
    wpm: int
    heard: tuple[str | None, ...]  # the intent decided at each start phase

    @property
    def hits(self) -> int:
        return sum(h == self.intent for h in self.heard)

    def reliable(self, misses: int = 1) -> bool:
        return len(self.heard) - self.hits <= misses

    def __str__(self) -> str:
        wrong = sorted({str(h) for h in self.heard if h != self.intent})
        return (f"{self.node}/{self.intent} {self.phrase!r} {self.voice}@{self.wpm}: "
                f"{self.hits}/{len(self.heard)}" + (f" (else {', '.join(wrong)})" if wrong else ""))


def speak(words: str, out_dir: Path, voice: str, wpm: int) -> Path:
    """espeak-ng audio of ``words`` (cached by name in ``out_dir``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{words}|{voice}|{wpm}".encode()).hexdigest()[:12]
    # ASCII names (sipp scenarios are Latin-1) within file name limits
    out = out_dir / f"say-{voice.replace('+', '_')}-{wpm}-{digest}.wav"
    if not out.exists():
        tmp = out.with_suffix(".tmp.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(tmp), words],
                       check=True, capture_output=True)
        tmp.replace(out)
    return out


def telephone_pcm(audio: Path) -> bytes:
    """8 kHz s16le samples of ``audio`` after a mu-law round trip (what the IVR hears)."""
    # -D: no random dither, as on the call (ivr.farend.sipp); the check is repeatable
    ulaw = subprocess.run(["sox", "-D", str(audio), "-r", str(RATE), "-c", "1", "-t", "ul", "-"],
                          capture_output=True, check=True).stdout
    return subprocess.run(["sox", "-t", "ul", "-r", str(RATE), "-c", "1", "-", "-t", "raw",
                           "-e", "signed-integer", "-b", "16", "-"],
                          input=ulaw, capture_output=True, check=True).stdout


def node_phrases(script: Script, node: Node, language: str | None = None) -> dict[str, list[str]]:
    """The intents -> phrases a question listens for (node intents + its globals), as the engine
    builds them for the recogniser."""
    return script.phrases_of(node, language or script.language)


def heard_at_offsets(model: LoadedModel, intents: Mapping[str, Sequence[str]], pcm: bytes, *,
                     node: str, offsets: int = 16, end_silence_ms: int = 400,
                     source: str = "phrase check") -> tuple[str | None, ...]:
    """The intent the real-turn recogniser decides for ``pcm`` at each start phase."""
    grammar = question_grammar(dict(intents), model, language=model.language, question=node,
                               source=source)
    tail = b"\x00\x00" * (RATE * TAIL_MS // 1000)
    out: list[str | None] = []
    for k in range(offsets):
        # k/offsets of a 20 ms frame: 0, 1.25, 2.5 ... 18.75 ms at 16 phases
        lead = RATE * LEAD_MS // 1000 + (RATE * 20 // 1000) * k // offsets
        hyp, _events = recognize_pcm(model, grammar, dict(intents),
                                     b"\x00\x00" * lead + pcm + tail,
                                     end_silence_ms=end_silence_ms,
                                     no_input_ms=24 * 3600 * 1000)
        # Only with headroom over the acceptance threshold: the same answer over a real call can
        # score a little lower than here (measured once: 0.76 on the call, >= 0.84 at 16 phases).
        sure = hyp.confidence >= confidence_for(model.language).threshold_for(hyp.features) \
            + HEADROOM
        out.append(hyp.intent if sure else None)
    return tuple(out)


def _code_digest() -> str:
    h = hashlib.sha256()
    # this module too: how the audio is made (espeak, sox, codec) decides the results as well;
    # and the confidence models (data)
    sources = [Path(str(module.__file__)) for module in _CODE] + [Path(__file__)]
    for source in sources + sorted(ivr.speech.confidence.DATA_DIR.glob("*.json")):
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def cache_key(model: LoadedModel, intents: Mapping[str, Sequence[str]], phrase: str, voice: str,
              wpm: int, offsets: int, end_silence_ms: int) -> str:
    blob = json.dumps([str(model.path), _code_digest(), sorted(intents.items()),
                       phrase, voice, wpm, offsets, end_silence_ms, LEAD_MS, TAIL_MS],
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_phrase(model: LoadedModel, script: Script, node: str, intent: str, phrase: str,
                 voice: str, wpm: int, work_dir: Path, *, offsets: int = 16,
                 end_silence_ms: int = 400, cache: Cache | None = None) -> PhraseCheck:
    """Speak ``phrase`` and decode it as an answer to question ``node`` at every phase."""
    intents = node_phrases(script, script.nodes[node], model.language)
    key = cache_key(model, intents, phrase, voice, wpm, offsets, end_silence_ms)
    if cache is not None and key in cache:
        return PhraseCheck(node, intent, phrase, voice, wpm, tuple(cache[key]))
    pcm = telephone_pcm(speak(phrase, work_dir, voice, wpm))
    heard = heard_at_offsets(model, intents, pcm, node=node, offsets=offsets,
                             end_silence_ms=end_silence_ms, source=str(script.path))
    if cache is not None:
        cache[key] = list(heard)
    return PhraseCheck(node, intent, phrase, voice, wpm, heard)


def reliable_phrase(model: LoadedModel, script: Script, node: str, intent: str, work_dir: Path,
                    *, combos: Sequence[tuple[str, int]] = DEFAULT_COMBOS, offsets: int = 16,
                    misses: int = 1, end_silence_ms: int = 400, cache: Cache | None = None,
                    ) -> tuple[PhraseCheck | None, list[PhraseCheck]]:
    """The first of the intent's script phrases (in script order) heard at every phase by one of
    the ``combos`` of (voice, wpm); failing that, the first heard at all but ``misses`` phases.
    Also returns every check made, for messages. None: no phrase is reliable."""
    spec = script.intents_of(script.nodes[node])[intent]
    tried: list[PhraseCheck] = []
    for phrase in spec.phrases_for(model.language, script.language):
        for voice, wpm in combos:
            c = check_phrase(model, script, node, intent, phrase, voice, wpm, work_dir,
                             offsets=offsets, end_silence_ms=end_silence_ms, cache=cache)
            tried.append(c)
            if c.reliable(0):
                return c, tried
    near = [c for c in tried if c.reliable(misses)]
    return (near[0] if near else None), tried


def espeak_variants() -> list[str]:
    """Every voice variant espeak-ng has (m1..m7, f1..f5 and the named ones)."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[3] for line in out.splitlines()[1:] if len(line.split()) > 3]


def search_voices(model: LoadedModel, script: Script, node: str, intent: str, work_dir: Path,
                  *, speeds: Sequence[int] = (130, 150, 170, 190), offsets: int = 16,
                  cache: Cache | None = None) -> list[PhraseCheck]:
    """Which (variant, wpm) customer voices are heard saying the intent's script phrases at every
    start phase? Each combination is screened at 2 phases first; survivors get ``offsets``."""
    language = model.language
    spec = script.intents_of(script.nodes[node])[intent]
    found: list[PhraseCheck] = []
    for phrase in spec.phrases_for(language, script.language):
        for variant in espeak_variants():
            for wpm in speeds:
                voice = f"{language}+{variant}"
                quick = check_phrase(model, script, node, intent, phrase, voice, wpm, work_dir,
                                     offsets=2, cache=cache)
                if not quick.reliable(0):
                    continue
                full = check_phrase(model, script, node, intent, phrase, voice, wpm, work_dir,
                                    offsets=offsets, cache=cache)
                if full.reliable(0):
                    found.append(full)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    """python3 tests/support/phrase_check.py SCRIPT NODE/INTENT...: search customer voices."""
    import argparse

    from ivr.config import Settings
    from ivr.speech.models import get_model
    from ivr.survey.loader import load_script

    ap = argparse.ArgumentParser(description="Find espeak-ng voices whose script phrase the "
                                             "recogniser hears at every start phase.")
    ap.add_argument("script", type=Path)
    ap.add_argument("steps", nargs="+", help="node/intent, e.g. reason/quality")
    ap.add_argument("--work", type=Path, default=Path("var/phrase-check"))
    args = ap.parse_args(argv)
    script = load_script(args.script)
    model = get_model(script.language, Settings())
    for step in args.steps:
        node, _, intent = step.partition("/")
        hits = search_voices(model, script, node, intent, args.work)
        print(json.dumps({"step": step, "voices": [[c.phrase, c.voice, c.wpm] for c in hits]},
                         ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
