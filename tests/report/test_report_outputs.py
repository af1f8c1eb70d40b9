"""JSON, CSV and HTML come from one Report and agree cell by cell; the HTML is self-contained
and renders with its charts in a real headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from ivr.report.model import Report, build_report
from ivr.report.render import to_html, to_json, write_csv
from ivr.report.tables import BREAKDOWN_COLUMNS

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class _Tables(HTMLParser):
    """Collects data-value of every cell, per data-table; also every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.refs: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "xlink:href"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if tag == "svg":
            self.svgs += 1
        if tag == "table":
            self.current = a.get("data-table")
            if self.current:
                self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag == "td" and self.current:
            self.tables[self.current][-1].append(a.get("data-value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.current = None


def _frac(rate: dict[str, Any]) -> Fraction | None:
    return Fraction(rate["num"], rate["den"]) if rate["den"] else None


def _agree(json_value: Any, csv_value: str, html_value: str, where: str) -> None:
    """One figure, three forms: int / str / bool / rate {num, den, value}."""
    if isinstance(json_value, dict):  # a rate
        exact = _frac(json_value)
        assert html_value == f"{json_value['num']}/{json_value['den']}", where
        assert csv_value == ("" if exact is None else repr(float(exact))), where
        assert json_value["value"] == (None if exact is None else float(exact)), where
    elif isinstance(json_value, bool):
        assert csv_value == html_value == ("true" if json_value else "false"), where
    else:
        assert csv_value == html_value == str(json_value), where


@pytest.fixture()
def outputs(db: sqlite_utils.Database, tmp_path: Path
            ) -> tuple[Report, dict[str, Any], dict[str, list[list[str]]], _Tables]:
    report = build_report(db, "c1")
    data = json.loads(to_json(report))
    write_csv(report, tmp_path / "csv")
    csvs = {}
    for path in sorted((tmp_path / "csv").glob("*.csv")):
        assert path.read_bytes().startswith(b"\xef\xbb\xbf"), path  # BOM: Excel reads UTF-8
        with path.open(encoding="utf-8-sig", newline="") as fh:
            csvs[path.stem] = list(csv.reader(fh))
    parser = _Tables()
    parser.feed(to_html(report))
    return report, data, csvs, parser


def test_json_csv_html_agree(outputs: Any) -> None:
    report, data, csvs, html = outputs
    assert set(csvs) == set(html.tables) == {
        "funnel", "by_segment", "by_voice", "by_hour", "by_day", "by_caller_id", "by_region",
        "merchants", "hosts", "reasons", "caller_ids", "webhooks", "suggestions"}
    # funnel: every metric, same order
    funnel = data["funnel"]
    assert [r[0] for r in csvs["funnel"][1:]] == [r[0] for r in html.tables["funnel"] if r]
    html_funnel = {row[0]: row[1] for row in html.tables["funnel"] if row}
    csv_funnel = {row[0]: row[1] for row in csvs["funnel"][1:]}
    assert set(csv_funnel) == set(html_funnel) == set(funnel) - {"unit"}
    for metric, value in funnel.items():
        if metric != "unit":
            _agree(value, csv_funnel[metric], html_funnel[metric], f"funnel.{metric}")
    assert funnel["recovery_rate"] == {"num": 2, "den": 4, "value": 0.5}
    # breakdowns: same groups, same order, every column
    for dim, groups in data["breakdowns"].items():
        csv_rows = csvs[f"by_{dim}"]
        assert csv_rows[0] == [dim, *BREAKDOWN_COLUMNS]
        html_rows = [r for r in html.tables[f"by_{dim}"] if r]
        assert [r[0] for r in csv_rows[1:]] == [r[0] for r in html_rows] == \
            [g["key"] for g in groups]
        for g, c_row, h_row in zip(groups, csv_rows[1:], html_rows, strict=True):
            for i, col in enumerate(BREAKDOWN_COLUMNS, 1):
                _agree(g[col], c_row[i], h_row[i], f"{dim}[{g['key']}].{col}")
    # rankings
    for kind in ("merchants", "hosts"):
        header = csvs[kind][0]
        html_rows = [r for r in html.tables[kind] if r]
        assert len(csvs[kind]) - 1 == len(html_rows) == len(data[kind])
        for rank, (j, c_row, h_row) in enumerate(
                zip(data[kind], csvs[kind][1:], html_rows, strict=True), 1):
            cols = dict(zip(header, zip(c_row, h_row, strict=True), strict=True))
            _agree(rank, *cols["rank"], f"{kind} rank")
            _agree(j["name"], *cols[kind[:-1]], f"{kind} name")
            for key in ("answered", "satisfaction_answered", "unsatisfied", "complaint_rate",
                        "rectify"):
                _agree(j[key], *cols[key], f"{kind}[{j['name']}].{key}")
    assert [m["name"] for m in data["merchants"] if m["rectify"]] == ["M2"]
    # suggestions
    sugg_csv = csvs["suggestions"]
    assert [r[0] for r in sugg_csv[1:]] == [s["call_id"] for s in data["suggestions"]]
    assert [r[0] for r in html.tables["suggestions"] if r] == [s["call_id"] for s in
                                                               data["suggestions"]]


def test_html_is_self_contained_and_escaped(outputs: Any) -> None:
    report, _data, _csvs, html = outputs
    page = to_html(report)
    assert html.refs == []  # no src/href at all: nothing loaded from anywhere
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?https?:", page)
    assert "@import" not in page and "url(http" not in page
    assert html.svgs >= 4  # funnel, by hour, merchants, hosts
    assert "五一回访 &lt;test&gt;" in page and "五一回访 <test>" not in page


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser",
                 "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.timeout(120)
def test_html_renders_in_headless_chromium(db: sqlite_utils.Database, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    Image = pytest.importorskip("PIL.Image") if not IN_CI else __import__(
        "PIL.Image", fromlist=["Image"])
    page = tmp_path / "report.html"
    page.write_text(to_html(build_report(db, "c1")), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1200,2000", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("IVR_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["IVR_KEEP_SCREENSHOT"])
    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        hist = img.convert("L").histogram()  # 256 gray levels
        n = sum(hist)
        mean = sum(level * k for level, k in enumerate(hist)) / n
        variance = sum(k * (level - mean) ** 2 for level, k in enumerate(hist)) / n
        assert variance > 200, f"page looks blank (variance {variance:.1f})"
        # the charts are drawn: the chart blue (#3b6fb6 at pygal's opacity) and the rectify red
        colors = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
        blues = sum(n for n, (r, g, b) in colors if b > 150 and r < 150 and b - r > 50)
        reds = sum(n for n, (r, g, b) in colors if r > 200 and g < 160 and b < 160)
        assert blues > 5000, "no blue chart bars visible"
        assert reds > 2000, "no red (rectify) bars visible"
