from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.campaign.policy import load_policy, policy_from_json, policy_json
from ivr.campaign.segments import load_segments
from ivr.campaign.yamlcfg import CampaignConfigError


def test_default_files_load_and_round_trip(h: Any) -> None:
    pol = load_policy(h.root / "config" / "policy.yaml")
    seg = load_segments(h.root / "config" / "segments.yaml")
    assert seg.segments["mothers"].voice == "cmn-calm-male"
    assert [(w.start, w.end) for w in seg.segments["mothers"].windows] == \
        [(13 * 60, 14 * 60), (20 * 60, 21 * 60)]
    assert seg.segments["students"].voice == "cmn-friendly-female"
    assert seg.segment_for("母婴", 50, 1, 1, 1) == "mothers"
    assert seg.segment_for("美妆", 50, 1, 1, 1) == "students"
    assert seg.segment_for("美妆", 500, 1, 1, 1) == seg.default_segment
    assert policy_from_json(policy_json(pol, seg), "c") == (pol, seg)


@pytest.mark.parametrize("text,expected", [
    ("default_segment: g\nsegments:\n  g:\n    voice: v\n    windows:\n"
     "      - {start: '14:00', end: '13:00'}\n",
     r"seg.yaml:6: segments.g.windows\[0\]: start must be before end"),
    ("default_segment: g\nsegments:\n  g:\n    voice: v\n    windows:\n"
     "      - {start: 13:00, end: '14:00'}\n",
     r"seg.yaml:6: segments.g.windows\[0\].start: .*quoted strings"),
    ("default_segment: nope\nsegments:\n  g: {voice: v, windows: [{start: '1:00', end: '2:00'}]}\n",
     r"default_segment 'nope' is not defined"),
    ("default_segment: g\nsegments:\n  g: {voice: v, windows: [{start: '1:00', end: '2:00'}]}\n"
     "rules:\n  - {segment: g, colour: red}\n",
     r"seg.yaml:5: rules\[0\].colour: Extra inputs are not permitted"),
    ("default_segment: g\nsegments:\n  g: {voice: 'a b', windows: [{start: '1:00', end: '2:00'}]}"
     "\n", r"seg.yaml:3: segments.g.voice: String should match pattern"),
    ("- just a list\n", r"seg.yaml:1: the top level must be a mapping"),
    ("default_segment: [\n", r"seg.yaml:2: not valid YAML"),
])
def test_segment_errors_name_file_line_field(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "seg.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignConfigError, match=expected):
        load_segments(f)


@pytest.mark.parametrize("text,expected", [
    ("caps:\n  per_day: 0\n", r"pol.yaml:2: caps.per_day: Input should be greater than"),
    ("quiet_hours: {start: '25:00', end: '09:00'}\n", r"pol.yaml:1: quiet_hours.start"),
    ("unknown_timezone: Mars/Base\n", r"pol.yaml:1: unknown_timezone: .*unknown time zone"),
    ("selection:\n  exclude_like:\n    password: ['%']\n", r"pol.yaml:2: selection.exclude_like"),
    ("retry:\n  max_attempts: 2\n  backoff_s: {busy: -1}\n",
     r"pol.yaml:3: retry.backoff_s.busy: Input should be greater than or equal to 0"),
    ("circuit_breaker: {window: 3, min_attempts: 5}\n", r"min_attempts must not exceed window"),
])
def test_policy_errors_name_file_line_field(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "pol.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignConfigError, match=expected):
        load_policy(f)
