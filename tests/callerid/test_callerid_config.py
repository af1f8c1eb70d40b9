from pathlib import Path

import pytest
from cid_helpers import SH

from ivr.callerid.config import load_pool
from ivr.yamlfile import YamlConfigError


def test_repo_pool_file_is_valid() -> None:
    pool = load_pool(Path(__file__).parents[2] / "config" / "numbers.yaml")
    assert pool.numbers and pool.default_pool in pool.pools
    # province comes from phonenumbers when the file does not give it
    assert pool.get("+862150001001").region == "Shanghai"


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "numbers.yaml"
    f.write_text(
        "timezone: Mars/Base\n"            # 1
        "health:\n"                        # 2
        "  min_calls: 0\n"                 # 3
        "numbers:\n"                       # 4
        f"  - number: '{SH}'\n"            # 5
        "    daily_cap: -1\n"              # 6
        "  - number: +862150001002\n"      # 7
        "  - number: '+86215000100x'\n"    # 8
        "    colour: red\n",               # 9
        encoding="utf-8")
    with pytest.raises(YamlConfigError) as err:
        load_pool(f)
    text = str(err.value)
    assert f"{f}:1: timezone: unknown time zone 'Mars/Base'" in text
    assert f"{f}:3: health.min_calls:" in text
    assert f"{f}:6: numbers[0].daily_cap:" in text
    assert f"{f}:7: numbers[1].number: write E.164 numbers in quotes" in text
    assert f"{f}:8: numbers[2].number: invalid phone number" in text
    assert f"{f}:9: numbers[2].colour: Extra inputs are not permitted" in text


def test_duplicate_number_points_at_second_entry(tmp_path: Path) -> None:
    f = tmp_path / "numbers.yaml"
    f.write_text(f"numbers:\n  - number: '{SH}'\n  - number: '{SH}'\n", encoding="utf-8")
    with pytest.raises(YamlConfigError, match=r":3: numbers\[1\].number: .* already listed"):
        load_pool(f)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "numbers.yaml"
    f.write_text("numbers: [\n", encoding="utf-8")
    with pytest.raises(YamlConfigError, match="not valid YAML"):
        load_pool(f)
    with pytest.raises(YamlConfigError, match="file not found"):
        load_pool(tmp_path / "nope.yaml")
