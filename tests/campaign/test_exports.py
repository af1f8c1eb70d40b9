"""Real order exports: GBK / GB18030 / UTF-8 (BOM) CSV and xlsx with Chinese headers import the
same orders; header presets and mapping files; optional fields; exit status of an all-bad file."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from ivr.campaign.exports import ColumnMap, ImportFileError, detect_encoding
from ivr.campaign.importer import import_orders, read_rejects
from ivr.cli import root

# A Douyin-style export: Chinese headers, two time columns (创建时间 is the order time, 支付时间
# stays an extra column), no category column.
HEADER = ["订单编号", "商品名称", "实付金额", "收货人手机号", "店铺名称", "达人昵称", "创建时间",
          "支付时间", "收货人"]
ROWS = [
    ["DY1001", "婴儿奶瓶 240ml", "89.50", "13912345678", "母婴旗舰店", "小美",
     "2025-06-01 12:00:00", "2025-06-01 12:01:30", "张三"],
    ["DY1002", "麻辣薯片", "￥12", "13912345679", "零食铺子", "阿强", "2025-06-02 08:00:00",
     "2025-06-02 08:00:10", "李四"],
    ["DY1003", "保温杯", "59", "13912345670", "", "", "2025-06-03 09:30:00", "", ""],
]
CONTENT = ("order_id", "phone", "product", "category", "price", "merchant", "host", "order_time",
           "buyer_name", "is_test", "extra")


def csv_text(rows: list[list[str]] = ROWS) -> str:
    return "".join(",".join(r) + "\r\n" for r in [HEADER, *rows])


def write_xlsx(path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for r in ROWS:
        # As Excel users leave them: the phone typed as a number, the times as date cells.
        ws.append([r[0], r[1], float(r[2].lstrip("￥")), int(r[3]), r[4] or None, r[5] or None,
                   datetime.fromisoformat(r[6]),
                   datetime.fromisoformat(r[7]) if r[7] else None, r[8] or None])
    wb.save(path)
    return path


def orders(db: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in CONTENT) for r in db["orders"].rows)


@pytest.fixture
def exports(tmp_path: Path) -> dict[str, Path]:
    out = {"gbk": tmp_path / "gbk.csv", "gb18030": tmp_path / "gb18030.csv",
           "utf8-bom": tmp_path / "bom.csv", "utf8": tmp_path / "plain.csv"}
    out["gbk"].write_bytes(csv_text().encode("gbk"))
    out["gb18030"].write_bytes(csv_text().encode("gb18030"))
    out["utf8-bom"].write_bytes(csv_text().encode("utf-8-sig"))
    out["utf8"].write_bytes(csv_text().encode("utf-8"))
    out["xlsx"] = write_xlsx(tmp_path / "export.xlsx")
    return out


def test_every_export_form_imports_the_same_orders(exports: dict[str, Path],
                                                   tmp_path: Path) -> None:
    from ivr.store import open_db

    seen = {}
    for name, path in exports.items():
        db = open_db(tmp_path / f"{name}.db")
        s = import_orders(db, path)
        assert (s.rows, s.inserted, s.rejected) == (3, 3, 0), (name, s, read_rejects(
            s.rejects_file))
        seen[name] = orders(db)
        db.conn.close()
    first = seen["utf8"]
    assert all(v == first for v in seen.values()), seen
    by_id = {r[0]: dict(zip(CONTENT, r, strict=True)) for r in first}
    a = by_id["DY1001"]
    assert (a["phone"], a["product"], a["price"], a["merchant"], a["host"], a["buyer_name"]) == (
        "+8613912345678", "婴儿奶瓶 240ml", 89.5, "母婴旗舰店", "小美", "张三")
    assert a["order_time"] == "2025-06-01T04:00:00+00:00" and a["category"] == ""
    assert json.loads(a["extra"]) == {"支付时间": "2025-06-01 12:01:30"}
    assert (by_id["DY1003"]["merchant"], by_id["DY1003"]["host"]) == ("", "")


def test_the_encoding_is_detected_and_reported(exports: dict[str, Path], db: Any) -> None:
    assert detect_encoding(exports["gbk"]) == "gb18030"  # GB18030 reads GBK exactly
    assert detect_encoding(exports["utf8-bom"]) == "utf-8-sig"
    assert detect_encoding(exports["utf8"]) == "utf-8"
    assert import_orders(db, exports["gbk"]).encoding == "GB18030"
    assert import_orders(db, exports["gbk"], encoding="gbk").encoding == "GBK"
    assert import_orders(db, exports["xlsx"]).encoding == "xlsx"


def test_utf8_with_a_few_gbk_rows_rejects_those_rows_by_line(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "mixed.csv"
    good = csv_text(ROWS[:2]).encode("utf-8")
    bad = (",".join(ROWS[2]) + "\r\n").encode("gbk")
    src.write_bytes(good + bad)
    s = import_orders(db, src)
    assert (s.encoding, s.inserted, s.rejected) == ("UTF-8", 2, 1)
    assert [(r["line"], r["reason"]) for r in read_rejects(s.rejects_file)] == [
        ("4", "not valid UTF-8")]


def test_a_gbk_file_read_as_utf8_names_the_header_line(exports: dict[str, Path],
                                                       db: Any) -> None:
    with pytest.raises(ImportFileError, match=r"gbk.csv:1: header is not valid UTF-8 text; pass "
                                              r"--encoding"):
        import_orders(db, exports["gbk"], encoding="utf-8")


def test_bytes_no_encoding_reads_are_an_error_with_file_and_line(db: Any,
                                                                tmp_path: Path) -> None:
    src = tmp_path / "binary.csv"
    src.write_bytes(b"order_id,phone\r\nA1,139\r\n\xff\xff\x80\x80\r\n")
    with pytest.raises(ImportFileError, match=r"binary.csv:3: neither UTF-8 nor GBK/GB18030 "
                                              r"text \(byte 0xff at offset 24\)"):
        import_orders(db, src)
    assert db["orders"].count == 0


def test_a_mapping_file_names_other_headers(db: Any, tmp_path: Path) -> None:
    src = tmp_path / "o.csv"
    src.write_text("单号,买家电话,货品,成交价,时间,Region\nK1,13912345678,茶叶,30,2025-06-01,华东\n",
                   encoding="utf-8")
    cols = tmp_path / "columns.yaml"
    cols.write_text("columns:\n  单号: order_id\n  买家电话: phone\n  货品: product\n"
                    "  成交价: price\n  时间: order_time\n", encoding="utf-8")
    s = import_orders(db, src, columns=ColumnMap.load(cols))
    assert (s.inserted, s.rejected) == (1, 0)
    row = db["orders"].get("K1")
    assert (row["product"], row["price"], json.loads(row["extra"])) == ("茶叶", 30.0,
                                                                        {"Region": "华东"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  单号: order_id\n  货品: produkt\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"bad.yaml:3: columns.货品"):
        ColumnMap.load(bad)


def _cli(tmp_path: Path, monkeypatch: Any, *args: str) -> Any:
    monkeypatch.setenv("IVR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(root, ["campaign", "import", *args])


def summary(r: Any) -> dict[str, Any]:
    return dict(json.loads(r.output.strip().splitlines()[-1]))


def test_cli_exit_status(exports: dict[str, Path], tmp_path: Path, monkeypatch: Any) -> None:
    r = _cli(tmp_path, monkeypatch, str(exports["gbk"]))
    assert r.exit_code == 0 and "3 rows (GB18030): 3 inserted" in r.output, r.output
    assert (summary(r)["inserted"], summary(r)["encoding"]) == (3, "GB18030")
    all_bad = tmp_path / "bad.csv"
    all_bad.write_bytes(csv_text([[*row[:3], "12345", *row[4:]] for row in ROWS]).encode("gbk"))
    r = _cli(tmp_path, monkeypatch, str(all_bad))
    assert r.exit_code == 1 and summary(r)["rejected"] == 3, r.output
    partial = tmp_path / "partial.csv"
    partial.write_bytes(csv_text([ROWS[0], [*ROWS[1][:3], "1", *ROWS[1][4:]]]).encode("gbk"))
    assert _cli(tmp_path, monkeypatch, str(partial)).exit_code == 0
    r = _cli(tmp_path, monkeypatch, str(partial), "--strict")
    assert r.exit_code == 1 and summary(r)["rejected"] == 1, r.output
