"""Every operator file goes through the one loader (ivr.yamlfile): the same answer, one line
``file:line: ...`` each, to an alias bomb, a repeated key, bytes that are not UTF-8 and a value of
the wrong type, whichever file it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.callerid.config import load_pool
from ivr.campaign.policy import load_policy
from ivr.campaign.segments import load_segments
from ivr.config import PROJECT_ROOT, load_settings
from ivr.errors import ConfigError
from ivr.outbox.config import load_outbox_config
from ivr.regions.rules import load_rules
from ivr.speech.voices import load_voice_file
from ivr.survey.loader import load_script
from ivr.yamlfile import MAX_ALIAS_NODES

# A guard, not a measurement: the bomb below used to take gigabytes and minutes to load.
pytestmark = pytest.mark.timeout(60)

CONFIG = PROJECT_ROOT / "config"


@dataclass(frozen=True)
class OperatorFile:
    name: str
    text: str  # a valid file of this kind
    load: Callable[[Path], object]
    first_key: str  # a top-level key of ``text``, written again for the duplicate test
    wrong: tuple[str, str]  # (line of ``text``, the same line with a value of the wrong type)
    key: str  # how the error names the key of ``wrong``


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


FILES = [
    OperatorFile("ivr.yaml", "platform: 快购\nlanguage: cmn\ntrunk:\n  port: 5080\n",
                 load_settings, "platform", ("  port: 5080", "  port: many"), "trunk.port"),
    OperatorFile("segments", _read(CONFIG / "segments.yaml"), load_segments, "default_segment",
                 ("rfm_quantiles: 5", "rfm_quantiles: five"), "rfm_quantiles"),
    OperatorFile("policy", _read(CONFIG / "policy.yaml"), load_policy, "unknown_timezone",
                 ("avoid_weekday_noon: false ", "avoid_weekday_noon: sometimes "),
                 "avoid_weekday_noon"),
    OperatorFile("numbers", _read(CONFIG / "numbers.yaml"), load_pool, "default_pool",
                 ("timezone: Asia/Shanghai ", "timezone: [Asia/Shanghai] "), "timezone"),
    OperatorFile("regions", _read(CONFIG / "regions.yaml"), load_rules, "rules",
                 ("      type: mobile", "      type: {kind: mobile}"), "rules[0].match.type"),
    OperatorFile("outbox", _read(CONFIG / "outbox.yaml"), load_outbox_config, "max_segments",
                 ("max_segments: 3", "max_segments: three"), "max_segments"),
    OperatorFile("voices", _read(PROJECT_ROOT / "voices" / "cmn-calm-female.yaml"),
                 load_voice_file, "rate", ("rate: 200", "rate: fast"), "rate"),
    OperatorFile("surveys", _read(PROJECT_ROOT / "surveys" / "platform_satisfaction.cmn.yaml"),
                 load_script, "start", ("  timeout_s: 6", "  timeout_s: long"), "timeout_s"),
]
IDS = [f.name for f in FILES]

# 9 levels of 9 aliases each: 9**9 (387 million) strings from about 300 bytes.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{k}: &{k} [{','.join([f'*{prev}'] * 9)}]\n"
    for prev, k in zip("abcdefgh", "bcdefghi", strict=True))


def problems(f: OperatorFile, path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        f.load(path)
    return [str(p) for p in info.value.problems]


def write(tmp_path: Path, f: OperatorFile, data: str | bytes) -> Path:
    path = tmp_path / f"{f.name}.yaml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("f", FILES, ids=IDS)
def test_the_valid_file_loads(f: OperatorFile, tmp_path: Path) -> None:
    f.load(write(tmp_path, f, f.text))  # so each failure below comes from its one change


ALIASES = {
    # the first value too large: e holds 9 * 9**4 strings (d, 9**4, is still within the bound)
    "bomb": (BOMB, "e: &e ", f"aliases expand the file beyond {MAX_ALIAS_NODES} extra nodes "
                             f"(write the values out instead)"),
    "recursive": ("loop: &loop [1, *loop]\n", "loop: ", "an alias refers to the node that "
                                                       "contains it"),
}


@pytest.mark.parametrize("case", sorted(ALIASES))
@pytest.mark.parametrize("f", FILES, ids=IDS)
def test_aliases_are_refused_before_they_expand(f: OperatorFile, case: str,
                                                tmp_path: Path) -> None:
    extra, at, problem = ALIASES[case]
    assert len(extra.encode()) < 320
    text = f.text + extra
    (msg,) = problems(f, write(tmp_path, f, text))
    assert msg == f"{tmp_path / f'{f.name}.yaml'}:{line_of(text, at)}: {problem}"


@pytest.mark.parametrize("f", FILES, ids=IDS)
def test_a_key_written_twice_is_an_error(f: OperatorFile, tmp_path: Path) -> None:
    first = next(line for line in f.text.splitlines() if line.startswith(f"{f.first_key}:"))
    text = f.text.rstrip("\n") + "\n" + first + "\n"
    path = write(tmp_path, f, text)
    (msg,) = problems(f, path)
    assert msg == (f"{path}:{len(text.splitlines())}: {f.first_key}: duplicate key "
                   f"{f.first_key!r} (the later one would silently win)")


@pytest.mark.parametrize("f", FILES, ids=IDS)
def test_bytes_that_are_not_utf8(f: OperatorFile, tmp_path: Path) -> None:
    head, rest = f.text.split("\n", 1)
    data = (head + "\n").encode() + "# café\n".encode("latin-1") + rest.encode()
    path = write(tmp_path, f, data)
    offset = len(head.encode()) + len("\n# caf")  # the é, 0xe9 in Latin-1
    (msg,) = problems(f, path)
    assert msg == (f"{path}:2: not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset} "
                   f"(save the file as UTF-8)")


@pytest.mark.parametrize("f", FILES, ids=IDS)
def test_a_value_of_the_wrong_type(f: OperatorFile, tmp_path: Path) -> None:
    good, bad = f.wrong
    assert f.text.count(good) == 1, good
    text = f.text.replace(good, bad)
    path = write(tmp_path, f, text)
    (msg,) = problems(f, path)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line_of(text, bad.strip())}: ")
    assert f.key in msg


def test_yes_no_on_off_stay_text_in_every_file(tmp_path: Path) -> None:
    """One boolean rule (YAML 1.2): a country code NO or an intent 'no' keeps its name."""
    from ivr.yamlfile import parse

    doc = parse("a: yes\nb: no\nc: on\nd: NO\ne: true\nf: False\n", "x.yaml")
    assert doc.data == {"a": "yes", "b": "no", "c": "on", "d": "NO", "e": True, "f": False}


# --- the files in force: what ivr.yaml names, for every command ----------------------------------
@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An ivr.yaml naming its own pool and rules (neither is a default file)."""
    for var in ("IVR_CONFIG", "IVR_HOME", "IVR_NUMBERS", "IVR_REGIONS", "IVR_OUTBOX_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    pool = tmp_path / "ops" / "pool.yaml"
    pool.parent.mkdir()
    pool.write_text("numbers:\n  - number: '+862150009999'\n", encoding="utf-8")
    rules = tmp_path / "ops" / "rules.yaml"
    rules.write_text("rules:\n  - name: jiangsu-paused\n    match: {region: Jiangsu}\n"
                     "    action: skip\n    reason: paused in Jiangsu\n", encoding="utf-8")
    cfg = tmp_path / "ivr.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\nnumbers: {pool}\nregions: {rules}\n",
                   encoding="utf-8")
    return {"config": cfg, "numbers": pool, "regions": rules}


def _ivr(*args: str) -> str:
    from click.testing import CliRunner

    from ivr.cli import root

    result = CliRunner().invoke(root, list(args))
    assert result.exit_code in (0, 1), result.output
    return result.output


def test_numbers_and_regions_check_follow_ivr_yaml(deployment: dict[str, Path]) -> None:
    import json

    from ivr.regions.guard import default_rules

    cfg = str(deployment["config"])
    report = json.loads(_ivr("-c", cfg, "numbers", "check", "--json"))
    assert [n["number"] for n in report["numbers"]] == ["+862150009999"]
    (decision,) = json.loads(_ivr("-c", cfg, "regions", "check", "--json", "+8613912345678"))
    assert (decision["action"], decision["rule_name"]) == ("skip", "jiangsu-paused")
    assert "jiangsu-paused" in _ivr("-c", cfg, "regions", "rules")
    # ... and what the dialer and the guard read is the same file
    settings = load_settings(cfg)
    assert settings.files()["numbers"] == deployment["numbers"]
    assert default_rules(settings.regions).source == str(deployment["regions"])


def test_ivr_yaml_names_a_broken_pool_every_command_says_so(deployment: dict[str, Path]) -> None:
    deployment["numbers"].write_text("numbers:\n  - number: '+862150009999'\n    daily_cap: x\n",
                                     encoding="utf-8")
    from click.testing import CliRunner

    from ivr.cli import root

    result = CliRunner().invoke(root, ["-c", str(deployment["config"]), "numbers", "check"])
    assert result.exit_code == 2
    assert f"Error: {deployment['numbers']}:3: numbers[0].daily_cap:" in result.output


def test_an_environment_override_holds_for_every_command(deployment: dict[str, Path],
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    other = tmp_path / "other-pool.yaml"
    other.write_text("numbers:\n  - number: '+861060001001'\n", encoding="utf-8")
    monkeypatch.setenv("IVR_NUMBERS", str(other))
    assert load_settings(deployment["config"]).numbers == other
    report = json.loads(_ivr("-c", str(deployment["config"]), "numbers", "check", "--json"))
    assert [n["number"] for n in report["numbers"]] == ["+861060001001"]
