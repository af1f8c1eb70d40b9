"""Install a Vosk model from a zip (local file or URL): verify, unpack safely, move into place.

The zip is checked against a sha256 (known official models have it built in), unpacked into a
temporary directory next to the destination, checked to look like a Vosk model and only then
renamed into place, so a failed, corrupt or mismatching download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ivr.speech.models import looks_like_model


class InstallError(Exception):
    """The model could not be installed; the message says why. Nothing was left behind."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    language: str
    sha256: str
    size: int


# Official Vosk models whose checksums we know (the --sha256 default for them).
KNOWN_MODELS: dict[str, KnownModel] = {
    "vosk-model-small-cn-0.22": KnownModel(
        "vosk-model-small-cn-0.22", "cmn",
        "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba", 43_898_754),
}
DEFAULT_MODEL_FOR_LANGUAGE = {"cmn": "vosk-model-small-cn-0.22"}
_CHUNK = 1 << 20


@dataclass
class Installed:
    language: str
    path: Path
    sha256: str

    def config_line(self) -> str:
        return f"speech:\n  models:\n    {self.language}: {self.path}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def known_for(name: str) -> KnownModel | None:
    """The known model a zip/URL file name refers to (``vosk-model-small-cn-0.22.zip``)."""
    stem = PurePosixPath(name).name
    stem = stem[:-4] if stem.endswith(".zip") else stem
    return KNOWN_MODELS.get(stem)


def download(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Fetch ``url`` to ``dest`` (http(s) or file://) with urllib."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
    except (OSError, ValueError) as exc:
        raise InstallError(f"download of {url} failed: {exc}") from exc


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = []
    for info in zf.infolist():
        p = PurePosixPath(info.filename.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise InstallError(f"zip member {info.filename!r} would be written outside the model "
                               f"directory; refusing this zip")
        # Symlinks in zips (unix mode in external_attr) could point anywhere.
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise InstallError(f"zip member {info.filename!r} is a symlink; refusing this zip")
        members.append(info)
    return members


def _model_root(unpacked: Path) -> Path:
    """The zip holds the model either at its top or inside one folder (the official layout)."""
    if looks_like_model(unpacked) is None:
        return unpacked
    entries = [e for e in unpacked.iterdir() if not e.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked


def install_zip(zip_path: Path, dest: Path, language: str, *,
                sha256: str | None = None, name_hint: str | None = None,
                force: bool = False) -> Installed:
    """Verify ``zip_path`` and unpack the model it holds into ``dest`` atomically."""
    if not zip_path.is_file():
        raise InstallError(f"{zip_path}: no such file")
    known = known_for(name_hint or zip_path.name)
    expected = (sha256 or (known.sha256 if known else "")).lower().strip()
    actual = sha256_file(zip_path)
    if expected and actual != expected:
        raise InstallError(f"{zip_path}: sha256 {actual} does not match the expected {expected} "
                           f"(download damaged or a different file); nothing was installed")
    if dest.exists() and not force:
        raise InstallError(f"{dest} already exists; remove it first or pass --force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                members = _safe_members(zf)
                bad = zf.testzip()
                if bad is not None:
                    raise InstallError(f"{zip_path}: member {bad!r} is corrupt (CRC mismatch)")
                zf.extractall(tmp / "x", members)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise InstallError(f"{zip_path}: not a readable zip file ({exc})") from exc
        root = _model_root(tmp / "x")
        problem = looks_like_model(root)
        if problem:
            problem = problem.replace(str(root), "<zip>")
            raise InstallError(f"{zip_path} does not hold a Vosk model: {problem}")
        old = None
        if dest.exists():  # --force: swap, then delete the old model
            old = tmp / "old"
            os.replace(dest, old)
        try:
            os.replace(root, dest)
        except OSError:
            if old is not None:
                os.replace(old, dest)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Installed(language, dest, actual)


def install_url(url: str, dest: Path, language: str, *, sha256: str | None = None,
                force: bool = False) -> Installed:
    """Download ``url`` next to ``dest`` and install it (the download is removed afterwards)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".zip", dir=dest.parent)
    os.close(fd)
    part = Path(name)
    try:
        download(url, part)
        return install_zip(part, dest, language, sha256=sha256,
                           name_hint=url.rstrip("/").rsplit("/", 1)[-1], force=force)
    finally:
        part.unlink(missing_ok=True)


def default_dest(models_dir: Path, zip_name: str) -> Path:
    stem = PurePosixPath(zip_name).name
    return models_dir / (stem[:-4] if stem.endswith(".zip") else stem)
