from __future__ import annotations

from pathlib import Path

import pytest

from ivr.speech.voices import VoiceError, load_voice_file, load_voices

GOOD = """name: t-voice
language: cmn
espeak_voice: cmn
gender: female
variant: f3
rate: 170
pitch: 55
volume: 1.0
"""


def write(tmp_path: Path, text: str, name: str = "v.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_profiles_load(voices):
    for name in ("cmn-calm-male", "cmn-friendly-female", "ko-calm-male", "ko-friendly-female",
                 "en-neutral"):
        assert name in voices
    assert voices["cmn-friendly-female"].espeak_name == "cmn+f3"
    assert voices["ko-calm-male"].espeak_name == "ko+m3"
    assert {v.gender for v in voices.values()} == {"male", "female"}


def test_good_profile(tmp_path):
    p = load_voice_file(write(tmp_path, GOOD))
    assert (p.name, p.espeak_name, p.rate, p.pitch, p.volume) == ("t-voice", "cmn+f3", 170, 55, 1.0)


@pytest.mark.parametrize("old,new,field,line,words", [
    ("espeak_voice: cmn", "espeak_voice: zh", "espeak_voice", 3, "unknown espeak-ng voice"),
    ("variant: f3", "variant: f9", "variant", 5, "unknown espeak-ng variant"),
    ("variant: f3", "variant: m3", "variant", 5, "is a male voice but gender is 'female'"),
    ("rate: 170", "rate: 900", "rate", 6, "out of range"),
    ("pitch: 55", "pitch: -1", "pitch", 7, "out of range"),
    ("pitch: 55", "pitch: high", "pitch", 7, "must be a whole number"),
    ("volume: 1.0", "volume: 3", "volume", 8, "out of range"),
    ("gender: female", "gender: robot", "gender", 4, "must be one of"),
    ("language: cmn", "language: zh", "language", 2, "not supported"),
    ("rate: 170", "rat: 170", "rat", 6, "unknown field"),
])
def test_errors_name_file_line_and_field(tmp_path, old, new, field, line, words):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(VoiceError) as err:
        load_voice_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: {field}:"), msg
    assert words in msg


def test_female_without_variant_is_refused(tmp_path):
    with pytest.raises(VoiceError, match="variant: .*female variant"):
        load_voice_file(write(tmp_path, GOOD.replace("variant: f3\n", "")))


def test_missing_required_field(tmp_path):
    with pytest.raises(VoiceError, match="espeak_voice: is required"):
        load_voice_file(write(tmp_path, GOOD.replace("espeak_voice: cmn\n", "")))


def test_bad_yaml_and_duplicates(tmp_path):
    with pytest.raises(VoiceError, match=r"v.yaml:\d+: not valid YAML"):
        load_voice_file(write(tmp_path, "name: [unclosed\n"))
    d = tmp_path / "dir"
    d.mkdir()
    write(d, GOOD, "a.yaml")
    write(d, GOOD, "b.yaml")
    with pytest.raises(VoiceError, match="already defined"):
        load_voices(d)
    with pytest.raises(VoiceError, match="not found"):
        load_voices(tmp_path / "nope")
