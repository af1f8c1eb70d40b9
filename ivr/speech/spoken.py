"""Numbers, prices and dates written out as they are read aloud, per survey language.

espeak-ng reads "39.9元" digit by digit or in the wrong register; prompts are rewritten into words
before synthesis: cmn 39.9 -> 三十九点九元, 2025-11-23 -> 二零二五年十一月二十三日;
ko (Sino-Korean numerals) 39.9 -> 삼십구 점 구 원, 2025-11-23 -> 이천이십오 년 십일 월 이십삼 일.
cn2an reads Chinese numerals, num2words the Korean and English ones.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

import cn2an
from num2words import num2words

Number = int | float | Decimal | str

_CMN_DIGITS = "零一二三四五六七八九"
_KO_DIGITS = "공일이삼사오육칠팔구"  # 공 for zero when reading digit strings (phone/order numbers)
_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_KO_MONTHS = {6: "유월", 10: "시월"}  # the two irregular month names
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
# Chinese measure words after which 2 is read 两 (两件, 两元), not 二.
_CMN_LIANG = set("件个位台元块次种瓶盒双张条只本份天")


def _decimal(value: Number) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # 39.9 -> "39.9", not the binary expansion
    try:
        d = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    # 39.90 -> 39.9, 199.00 -> 199 (exponent stays non-negative so 100 is not 1E+2)
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _check_lang(lang: str) -> str:
    if lang not in ("cmn", "ko", "en"):
        raise ValueError(f"unsupported language {lang!r} (cmn, ko, en)")
    return lang


def speak_number(value: Number, lang: str) -> str:
    """A cardinal number in words: cmn 39.9 -> 三十九点九; ko -> 삼십구 점 구; en -> thirty-nine
    point nine."""
    d = _decimal(value)
    lang = _check_lang(lang)
    if lang == "cmn":
        return str(cn2an.an2cn(str(d)))
    return str(num2words(d, lang="ko" if lang == "ko" else "en"))


def speak_price(value: Number, lang: str) -> str:
    """A price in yuan: cmn 39.9 -> 三十九点九元, 2 -> 两元; ko -> 삼십구 점 구 원."""
    d = _decimal(value)
    lang = _check_lang(lang)
    if lang == "cmn":
        return ("两" if d == 2 else speak_number(d, lang)) + "元"
    if lang == "ko":
        return speak_number(d, lang) + " 원"
    return speak_number(d, lang) + " yuan"


def speak_digits(digits: str, lang: str) -> str:
    """Digit by digit (phone and order numbers): cmn 0571 -> 零五七一; ko -> 공오칠일."""
    lang = _check_lang(lang)
    if not digits.isdigit():
        raise ValueError(f"not a digit string: {digits!r}")
    if lang == "cmn":
        return "".join(_CMN_DIGITS[int(c)] for c in digits)
    if lang == "ko":
        return "".join(_KO_DIGITS[int(c)] for c in digits)
    return " ".join(_EN_DIGITS[int(c)] for c in digits)


def speak_date(value: dt.date | str, lang: str) -> str:
    """cmn 2025-11-23 -> 二零二五年十一月二十三日 (the year digit by digit, as it is said);
    ko -> 이천이십오 년 십일 월 이십삼 일; en -> November twenty-third, twenty twenty-five."""
    lang = _check_lang(lang)
    if isinstance(value, str):
        m = _DATE_RE.fullmatch(value.strip())
        if not m:
            raise ValueError(f"not a date (YYYY-MM-DD): {value!r}")
        value = _to_date(m)
    y, mo, d = value.year, value.month, value.day
    if lang == "cmn":
        year = speak_digits(str(y), "cmn")
        return f"{year}年{speak_number(mo, 'cmn')}月{speak_number(d, 'cmn')}日"
    if lang == "ko":
        month = _KO_MONTHS.get(mo) or f"{speak_number(mo, 'ko')} 월"
        return f"{speak_number(y, 'ko')} 년 {month} {speak_number(d, 'ko')} 일"
    return f"{_EN_MONTHS[mo - 1]} {num2words(d, lang='en', to='ordinal')}, " \
           f"{num2words(y, lang='en', to='year')}"


_DATE_RE = re.compile(r"(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})(?:\s*日)?")


def _to_date(m: re.Match[str]) -> dt.date:
    return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))


_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_TOKEN_RE = re.compile(
    rf"(?P<date>{_DATE_RE.pattern})"
    rf"|[¥￥]\s*(?P<yen>{_NUM})"
    rf"|(?P<price>{_NUM})\s*(?P<unit>元|块钱|块|원|yuan\b|RMB\b)"
    rf"|(?P<pct>{_NUM})\s*[%％]"
    rf"|(?P<digits>0\d+|\d{{7,}})(?![\d.])"
    rf"|(?P<num>{_NUM})"
)


def normalize_text(text: str, lang: str) -> str:
    """Rewrite the digits inside a prompt into words for ``lang``; other text is left alone.

    Dates (2025-11-23, 2025年11月23日), prices (39.9元, ¥39.9, 39.9원), percentages, digit strings
    (leading 0 or 7+ digits: read one by one) and plain numbers (1,299 / 3.5).
    """
    lang = _check_lang(lang)

    def sub(m: re.Match[str]) -> str:
        if m.group("date"):
            try:
                date = _DATE_RE.fullmatch(m.group("date"))
                assert date is not None
                return speak_date(_to_date(date), lang)
            except ValueError:  # 2025-13-45 is not a date: read the numbers as they are
                return _numbers_only(m.group("date"), lang)
        if m.group("yen"):
            return speak_price(m.group("yen"), lang)
        if m.group("price"):
            unit = m.group("unit")
            if lang == "cmn" and unit in ("块", "块钱"):
                value = _decimal(m.group("price"))
                return ("两" if value == 2 else speak_number(value, lang)) + unit
            return speak_price(m.group("price"), lang)
        if m.group("pct"):
            n = speak_number(m.group("pct"), lang)
            return {"cmn": f"百分之{n}", "ko": f"{n} 퍼센트", "en": f"{n} percent"}[lang]
        if m.group("digits"):
            return speak_digits(m.group("digits"), lang)
        raw = m.group("num")
        if lang == "cmn" and _decimal(raw) == 2 and text[m.end():m.end() + 1] in _CMN_LIANG:
            return "两"
        return speak_number(raw, lang)

    return _TOKEN_RE.sub(sub, text)


def _numbers_only(text: str, lang: str) -> str:
    return re.sub(r"\d+", lambda m: speak_number(m.group(), lang), text)
