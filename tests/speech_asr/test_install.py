"""Model installer: good zip, wrong sha, corrupt zip, zip-slip, not-a-model, URL download."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.speech import install as inst
from ivr.speech.cli import speech

MODEL_FILES = {
    "am/final.mdl": b"acoustic",
    "conf/model.conf": b"--beam=10\n",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/HCLr.fst": b"fst",
    "README": b"fake model for tests\n",
}


def make_zip(path: Path, files: dict[str, bytes], top: str = "vosk-model-test") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_good_zip_installs_atomically(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "vosk-model-test"
    done = inst.install_zip(z, dest, "cmn", sha256=sha(z))
    assert (dest / "am" / "final.mdl").read_bytes() == b"acoustic"
    assert done.sha256 == sha(z)
    assert leftovers(dest.parent) == ["vosk-model-test"]  # no temp dirs left
    assert "cmn: " in done.config_line() and str(dest) in done.config_line()


def test_model_at_zip_top_level(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES, top="")
    dest = tmp_path / "models" / "m"
    inst.install_zip(z, dest, "ko")
    assert (dest / "conf" / "model.conf").is_file()


def test_wrong_sha_leaves_nothing(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "x"
    with pytest.raises(inst.InstallError, match="does not match"):
        inst.install_zip(z, dest, "cmn", sha256="0" * 64)
    assert leftovers(tmp_path / "models") == []


def test_known_model_name_defaults_sha(tmp_path: Path) -> None:
    # A file named like the official Mandarin model must match the official checksum.
    z = make_zip(tmp_path / "vosk-model-small-cn-0.22.zip", MODEL_FILES)
    with pytest.raises(inst.InstallError, match=inst.KNOWN_MODELS[
            "vosk-model-small-cn-0.22"].sha256):
        inst.install_zip(z, tmp_path / "models" / "cn", "cmn")
    assert leftovers(tmp_path / "models") == []


def test_corrupt_zip(tmp_path: Path) -> None:
    good = make_zip(tmp_path / "m.zip", MODEL_FILES).read_bytes()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(inst.InstallError, match="not a readable zip"):
        inst.install_zip(bad, tmp_path / "models" / "x", "cmn")
    assert leftovers(tmp_path / "models") == []


def test_crc_mismatch_zip(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", {**MODEL_FILES, "am/final.mdl": b"A" * 4000}, top="")
    data = bytearray(z.read_bytes())
    at = data.find(b"A" * 100)
    data[at:at + 4] = b"BBBB"  # stored (uncompressed) payload altered: CRC no longer matches
    z.write_bytes(bytes(data))
    with pytest.raises(inst.InstallError, match="corrupt|not a readable"):
        inst.install_zip(z, tmp_path / "models" / "x", "cmn")
    assert leftovers(tmp_path / "models") == []


def test_zip_slip_refused(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", {**MODEL_FILES, "../../evil.txt": b"x"}, top="")
    with pytest.raises(inst.InstallError, match="outside"):
        inst.install_zip(z, tmp_path / "models" / "x", "cmn")
    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path / "models") == []


def test_not_a_model(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", {"README": b"hello", "docs/a.txt": b"x"})
    with pytest.raises(inst.InstallError, match="does not hold a Vosk model"):
        inst.install_zip(z, tmp_path / "models" / "x", "cmn")
    assert leftovers(tmp_path / "models") == []


def test_existing_dest_needs_force(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "x"
    inst.install_zip(z, dest, "cmn")
    with pytest.raises(inst.InstallError, match="already exists"):
        inst.install_zip(z, dest, "cmn")
    (dest / "marker").write_text("old")
    inst.install_zip(z, dest, "cmn", force=True)
    assert not (dest / "marker").exists()
    assert leftovers(dest.parent) == ["x"]


def test_file_url(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "x"
    inst.install_url(z.resolve().as_uri(), dest, "cmn", sha256=sha(z))
    assert (dest / "am" / "final.mdl").is_file()
    assert leftovers(dest.parent) == ["x"]


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_url_and_missing(tmp_path: Path, http_dir: str) -> None:
    make_zip(tmp_path / "www" / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "x"
    inst.install_url(f"{http_dir}/m.zip", dest, "cmn")
    assert (dest / "am" / "final.mdl").is_file()
    with pytest.raises(inst.InstallError, match="download .* failed"):
        inst.install_url(f"{http_dir}/nope.zip", tmp_path / "models" / "y", "cmn")
    assert leftovers(tmp_path / "models") == ["x"]


def test_cli_install_model(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", MODEL_FILES)
    dest = tmp_path / "models" / "m"
    runner = CliRunner()
    res = runner.invoke(speech, ["install-model", "--lang", "cmn", "--zip", str(z),
                                 "--dest", str(dest), "--sha256", sha(z)])
    assert res.exit_code == 0, res.output
    assert f"cmn: {dest}" in res.output
    res = runner.invoke(speech, ["install-model", "--lang", "cmn", "--zip", str(z),
                                 "--dest", str(tmp_path / "o"), "--sha256", "1" * 64])
    assert res.exit_code != 0 and "does not match" in res.output
    res = runner.invoke(speech, ["install-model", "--lang", "cmn"])
    assert res.exit_code != 0 and "exactly one of" in res.output
