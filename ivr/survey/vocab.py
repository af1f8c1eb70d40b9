"""The speech model's vocabulary as a ``(word) -> bool`` callable for :func:`load_script`.

Uses the speech layer's shared model registry (:mod:`ivr.speech.models`) when it is there, else
loads Vosk directly: ``vosk.Model(path)`` and ``vosk_model_find_word`` through vosk's cffi lib.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr.config import PROJECT_ROOT, Settings
from ivr.errors import ConfigError


class VocabularyError(ConfigError):
    """No usable model for the language; the message says what is missing."""


def vocabulary_for(language: str, settings: Settings,
                   model_path: Path | None = None) -> Callable[[str], bool]:
    if model_path is None:
        try:
            from ivr.speech import models
        except ImportError:
            models = None  # type: ignore[assignment]
        if models is not None:
            try:
                return models.get_model(language, settings).has_word
            except models.ModelError as exc:
                raise VocabularyError(str(exc)) from exc
        spec = settings.speech.models.get(language)
        if spec is None:
            raise VocabularyError(f"no speech model configured for language {language!r}")
        model_path = _spec_path(spec)
    return _direct(model_path)


def _spec_path(spec: str) -> Path:
    if spec.startswith("auto:"):
        found = importlib.util.find_spec(spec.removeprefix("auto:"))
        if found is None or not found.submodule_search_locations:
            raise VocabularyError(f"python package for model {spec!r} is not installed")
        return Path(next(iter(found.submodule_search_locations))) / "model"
    path = Path(spec).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _direct(path: Path) -> Callable[[str], bool]:
    if not path.is_dir():
        raise VocabularyError(f"speech model directory {path} not found")
    import vosk
    from vosk import _c

    vosk.SetLogLevel(-1)
    try:
        model: Any = vosk.Model(str(path))
    except Exception as exc:  # vosk raises a bare Exception when Kaldi cannot load it
        raise VocabularyError(f"speech model at {path} failed to load: {exc}") from exc
    cache: dict[str, bool] = {}

    def has_word(word: str) -> bool:
        if word not in cache:
            cache[word] = int(_c.vosk_model_find_word(model._handle, word.encode("utf-8"))) != -1
        return cache[word]

    return has_word
