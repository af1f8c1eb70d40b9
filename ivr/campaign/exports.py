"""Real order exports as the importer meets them: the text encoding of a CSV (UTF-8 with or
without BOM, GBK/GB18030 from a Chinese Excel), the header names platforms write (Chinese
presets, an operator's column mapping file) and xlsx workbooks.

This module only turns a file into header + cells; :mod:`ivr.campaign.importer` applies the
import policy to the rows.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.errors import ConfigError
from ivr.yamlfile import load_model

Canonical = Literal["order_id", "phone", "product", "category", "price", "merchant", "host",
                    "order_time", "platform", "buyer_name", "is_test"]

# Header names of common Chinese platform exports (and a few English ones), per field, in order
# of preference: when an export has two that name one field (创建时间 and 支付时间), the earlier
# one here is the field and the other stays an extra column under its own name.
PRESETS: dict[str, tuple[str, ...]] = {
    "order_id": ("订单号", "订单编号", "订单ID", "主订单编号", "子订单编号", "订单号码", "order id",
                 "order no"),
    "phone": ("手机号", "手机号码", "收货人手机号", "收货人手机", "买家手机号", "联系电话",
              "收货人电话", "收件人手机", "手机", "电话", "mobile", "phone number"),
    "product": ("商品名称", "商品", "商品名", "商品标题", "宝贝标题", "宝贝名称", "产品名称",
                "product name", "item"),
    "category": ("类目", "商品类目", "一级类目", "品类", "类别"),
    "price": ("实付金额", "实付款", "支付金额", "订单金额", "实收款", "价格", "金额", "商品单价",
              "单价", "amount"),
    "merchant": ("店铺名称", "店铺", "店铺名", "商家名称", "商家", "shop", "store"),
    "host": ("主播", "主播昵称", "达人昵称", "达人", "带货达人", "anchor", "streamer"),
    "order_time": ("下单时间", "订单创建时间", "创建时间", "支付时间", "付款时间", "成交时间",
                   "created at", "order date"),
    "platform": ("平台", "渠道", "来源平台"),
    "buyer_name": ("收货人", "收货人姓名", "收件人", "买家姓名", "买家昵称", "客户姓名"),
    "is_test": ("测试订单", "是否测试"),
}
FIELD_NAMES: tuple[str, ...] = tuple(PRESETS)
_PRESET_RANK = {_norm: (f, i) for f, names in PRESETS.items() for i, _norm in
                enumerate(n.lower() for n in names)}

ENCODINGS = {"auto": "auto", "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig",
             "gbk": "gbk", "gb2312": "gbk", "cp936": "gbk", "gb18030": "gb18030"}
_SAMPLE = 1 << 20  # bytes looked at to detect the encoding
BOM = codecs.BOM_UTF8


class ImportFileError(ConfigError, ValueError):
    """The file as a whole cannot be imported (unreadable, undecodable, header lacks required
    columns, bad column mapping file)."""


def norm_header(name: str) -> str:
    """Full-width letters and spaces, BOM, case and outer blanks do not change a header."""
    return " ".join(unicodedata.normalize("NFKC", name.replace("\ufeff", "")).split()).lower()


class ColumnMap(BaseModel):
    """A column mapping file: ``columns: {订单号: order_id, 手机: phone}`` (export header ->
    field), optional ``encoding`` and ``sheet`` (xlsx)."""

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, Canonical] = Field(default_factory=dict)
    encoding: str | None = None
    sheet: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in ENCODINGS:
            raise ValueError(f"unknown encoding {value!r} (use one of: "
                             f"{', '.join(sorted(ENCODINGS))})")
        return value

    @classmethod
    def load(cls, path: Path | str) -> ColumnMap:
        return load_model(cls, path, error=ImportFileError)

    def resolve(self, header: list[str]) -> list[str]:
        """The export's header -> field names. The mapping file wins, then a header that is the
        field's own name, then the preset order; a header that loses stays as written."""
        mapped: dict[str, str] = {norm_header(k): v for k, v in self.columns.items()}
        claims: dict[str, tuple[int, int]] = {}  # field -> (rank, column index)
        wanted: list[tuple[str, int] | None] = []
        for i, name in enumerate(header):
            key = norm_header(name)
            if key in mapped:
                field, rank = mapped[key], -2
            elif key.replace(" ", "_") in PRESETS:
                field, rank = key.replace(" ", "_"), -1
            elif key in _PRESET_RANK:
                field, rank = _PRESET_RANK[key]
            else:
                wanted.append(None)
                continue
            wanted.append((field, rank))
            if field not in claims or rank < claims[field][0]:
                claims[field] = (rank, i)
        return [w[0] if w is not None and claims[w[0]][1] == i else name.strip()
                for i, (name, w) in enumerate(zip(header, wanted, strict=True))]


def encoding_name(value: str) -> str:
    enc = ENCODINGS.get(value.strip().lower())
    if enc is None:
        raise ImportFileError(f"unknown encoding {value!r} (use one of: "
                              f"{', '.join(sorted(ENCODINGS))})")
    return enc


def detect_encoding(path: Path) -> str:
    """UTF-8 (a BOM says so), else the first MiB decides: text whose non-ASCII characters are
    mostly valid UTF-8 is UTF-8 (its bad rows are rejected one by one), else GB18030
    (a superset of GBK and GB2312) when it decodes cleanly; anything else is an error with the
    line of the first byte neither reads."""
    with path.open("rb") as fb:
        data = fb.read(_SAMPLE)
    if data.startswith(BOM):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        cut = len(data) == _SAMPLE and exc.start >= len(data) - 3
        if cut and exc.reason == "unexpected end of data":
            return "utf-8"  # the sample cut a character in two
    # GBK text read as UTF-8 yields a valid character now and then (a lead byte C2-DF before a
    # trail byte A1-BF) but far more errors; UTF-8 with a few pasted GBK cells is the reverse.
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if good >= 4 * bad:
        return "utf-8"
    try:
        data.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError as exc:
        if len(data) == _SAMPLE and exc.start >= len(data) - 4:
            return "gb18030"
        line = data[:exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}:{line}: neither UTF-8 nor GBK/GB18030 text (byte 0x{data[exc.start]:02x} "
            f"at offset {exc.start}); save the export as UTF-8 or pass --encoding") from exc


def _cell(value: Any) -> str:
    """An xlsx cell as the text a CSV export would hold: a phone typed as a number keeps its
    digits (no '.0'), a date/time cell is ISO text (in the export's local time)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def xlsx_rows(path: Path, sheet: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(row number in the sheet, cells as text) of the first (or the named) sheet."""
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(f"{path}: not a readable xlsx workbook ({exc})") from exc
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise ImportFileError(f"{path}: no sheet {sheet!r} (has: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        first = ws.min_row or 1
        for n, values in enumerate(ws.iter_rows(values_only=True), start=first):
            cells = [_cell(v) for v in values]
            while cells and cells[-1] == "":
                cells.pop()  # formatted but empty trailing cells
            yield n, cells
    finally:
        wb.close()
