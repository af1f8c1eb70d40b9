from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ivr.campaign.importer import ImportFileError, import_orders, normalise_phone, read_rejects
from ivr.phone import InvalidNumber

HEADER = "order_id,phone,product,category,price,merchant,host,order_time,buyer_name,is_test,city\n"
GOOD = [
    "A1,13912345678,奶瓶,母婴,89.5,旗舰店,主播甲,2025-06-01 12:00:00,张三,0,Wuhan\n",
    "A2,+86 139 1234 5679,薯片,零食,¥12,零食铺,主播乙,2025-06-02T08:00:00+08:00,,,\n",
]
BAD = {
    # line number in the file -> (row, expected reason prefix)
    4: ("B1,12345,杯子,家居,10,店,主播,2025-06-01 10:00,,,\n", "invalid phone number '12345'"),
    5: ("B2,13912345670,,家居,10,店,主播,2025-06-01 10:00,,,\n", "missing field product"),
    6: ("B3,13912345671,杯子,家居,abc,店,主播,2025-06-01 10:00,,,\n", "bad price 'abc'"),
    7: ("B4,13912345672,杯子,家居,-3,店,主播,2025-06-01 10:00,,,\n", "bad price '-3'"),
    8: ("B5,13912345673,杯子,家居,3,店,主播,yesterday,,,\n", "bad order_time 'yesterday'"),
    9: ("A1,13912345678,奶瓶,母婴,99,旗舰店,主播甲,2025-06-01 12:00:00,张三,0,Wuhan\n",
        "duplicate order_id 'A1' with different content (first at line 2)"),
    10: ("B6,13912345674,杯子,家居,3,店,主播,2025-06-01 10:00,,maybe,\n", "bad is_test 'maybe'"),
    11: ("B7,100&PJSIP/999,杯子,家居,3,店,主播,2025-06-01 10:00,,,\n", "invalid phone number"),
    12: ("B8,13912345675,杯子\n", "row has 3 fields, header has 11"),
}
BAD_LINES = sorted(BAD)
REPEAT = GOOD[0]  # identical repeat: counted and listed with its first line, imported once


def write_csv(path: Path) -> Path:
    lines = [HEADER, *GOOD, *(BAD[n][0] for n in sorted(BAD)), REPEAT]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def rejects(path: Path) -> list[dict[str, str]]:
    return read_rejects(path)


def test_csv_bad_rows_are_rejected_with_line_numbers(db: Any, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "orders.csv")
    summary = import_orders(db, src)
    got = rejects(Path(summary.rejects_file))
    repeat_line = 2 + len(GOOD) + len(BAD)
    assert [int(r["line"]) for r in got] == [*sorted(BAD), repeat_line]
    for r in got[:-1]:
        assert r["reason"].startswith(BAD[int(r["line"])][1]), r
    assert (got[-1]["reason"], got[-1]["first_line"], got[-1]["order_id"]) == (
        "repeat of line 2 (identical: imported once)", "2", "A1")
    assert got[BAD_LINES.index(9)]["first_line"] == "2"  # the duplicate with other content
    assert summary.rows == len(GOOD) + len(BAD) + 1
    assert (summary.inserted, summary.rejected, summary.duplicates) == (2, len(BAD), 1)
    rows = {r["order_id"]: r for r in db["orders"].rows}
    assert set(rows) == {"A1", "A2"}
    assert rows["A1"]["phone"] == "+8613912345678"
    assert rows["A2"]["phone"] == "+8613912345679"
    assert rows["A2"]["price"] == 12.0
    assert rows["A1"]["order_time"] == "2025-06-01T04:00:00+00:00"  # naive = Asia/Shanghai
    assert rows["A2"]["order_time"] == "2025-06-02T00:00:00+00:00"
    assert json.loads(rows["A1"]["extra"]) == {"city": "Wuhan"}
    assert rows["A1"]["buyer_name"] == "张三" and rows["A2"]["buyer_name"] is None


def test_reimport_is_idempotent(db: Any, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "orders.csv")
    import_orders(db, src)
    before = [dict(r) for r in db["orders"].rows]
    again = import_orders(db, src)
    assert [dict(r) for r in db["orders"].rows] == before
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert again.rejected == len(BAD)


def test_changed_order_in_a_newer_export_is_updated(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text(HEADER + GOOD[0], encoding="utf-8")
    import_orders(db, src)
    src.write_text(HEADER + GOOD[0].replace("89.5", "79.5"), encoding="utf-8")
    s = import_orders(db, src)
    assert (s.inserted, s.updated, s.unchanged) == (0, 1, 0)
    assert db["orders"].get("A1")["price"] == 79.5


def test_jsonl_with_bad_lines(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "orders.jsonl"
    good = {"order_id": "J1", "phone": 13912345678, "product": "奶粉", "category": "母婴",
            "price": 199, "merchant": "店", "host": "主播", "order_time": "2025-06-01 10:00",
            "is_test": False, "vip": {"level": 3}}
    src.write_text("\n".join([
        json.dumps(good, ensure_ascii=False),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({**good, "order_id": "J2", "price": None}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    s = import_orders(db, src, rejects_path=tmp_path / "rej.csv")
    got = [(int(r["line"]), r["reason"].split(":")[0]) for r in rejects(tmp_path / "rej.csv")]
    assert got == [(2, "not valid JSON"), (4, "not a JSON object"), (5, "missing field price")]
    assert s.inserted == 1
    assert json.loads(db["orders"].get("J1")["extra"]) == {"vip": {"level": 3}}


def test_multiline_csv_field_keeps_line_numbers(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "o.csv"
    src.write_text(HEADER + 'M1,13912345678,"two\nlines",家居,1,店,主播,2025-06-01,,,\n'
                   "M2,bad,x,家居,1,店,主播,2025-06-01,,,\n", encoding="utf-8")
    s = import_orders(db, src)
    assert [int(r["line"]) for r in rejects(Path(s.rejects_file))] == [4]
    assert s.inserted == 1


@pytest.mark.parametrize("header", ["order_id,phone", "订单号,手机"])  # English, Chinese export
def test_header_without_required_columns_is_a_file_error(db: Any, tmp_path: Path,
                                                         header: str) -> None:
    src = tmp_path / "o.csv"
    src.write_text(f"{header}\nX,13912345678\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"o.csv:1: header lacks required column\(s\) "
                                              r"product, price, order_time .*--columns"):
        import_orders(db, src)
    assert db["orders"].count == 0


@pytest.mark.parametrize("text,expected", [
    ("13912345678", "+8613912345678"), ("+86 139 1234 5678", "+8613912345678"),
    ("0086-139-1234-5678", "+8613912345678"), ("+1 212 123 4567", None), ("139 1234", None),
])
def test_normalise_phone(text: str, expected: str | None) -> None:
    if expected is None:  # no US exchange starts with 1; too short
        with pytest.raises(InvalidNumber):
            normalise_phone(text)
    else:
        assert normalise_phone(text) == expected


def test_big_file_is_streamed_in_batches(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    with src.open("w", encoding="utf-8") as f:
        f.write(HEADER)
        for i in range(2500):
            f.write(f"X{i},139{i:08d},p,零食,1,店,主播,2025-06-01,,,\n")
    seen: list[int] = []
    s = import_orders(db, src, batch_size=1000, progress=seen.append)
    assert s.inserted == 2500 and db["orders"].count == 2500
    assert len(seen) == 3  # two full batches + the rest
    assert seen[-1] == src.stat().st_size
