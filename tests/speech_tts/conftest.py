from __future__ import annotations

from pathlib import Path

import pytest

from ivr.speech.voices import load_voices

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def voices():
    return load_voices(REPO / "voices")
