from __future__ import annotations

import datetime as dt

import pytest

from ivr.speech.spoken import normalize_text, speak_date, speak_digits, speak_number, speak_price


@pytest.mark.parametrize("value,cmn,ko", [
    (39.9, "三十九点九元", "삼십구 점 구 원"),
    ("199", "一百九十九元", "백구십구 원"),
    (10, "十元", "십 원"),
    ("39.90", "三十九点九元", "삼십구 점 구 원"),
    ("1,299", "一千二百九十九元", "천이백구십구 원"),
    (10010, "一万零一十元", "만 십 원"),
    (0.5, "零点五元", "영 점 오 원"),
    (2, "两元", "이 원"),
])
def test_prices(value, cmn, ko):
    assert speak_price(value, "cmn") == cmn
    assert speak_price(value, "ko") == ko


def test_numbers_and_digits():
    assert speak_number(100, "cmn") == "一百"  # not 1E+2
    assert speak_number(110, "cmn") == "一百一十"
    assert speak_number(12, "ko") == "십이"
    assert speak_number(39.9, "en") == "thirty-nine point nine"
    assert speak_digits("0571", "cmn") == "零五七一"
    assert speak_digits("0571", "ko") == "공오칠일"
    with pytest.raises(ValueError):
        speak_number("abc", "cmn")
    with pytest.raises(ValueError):
        speak_number(1, "fr")


def test_dates():
    assert speak_date("2025-11-23", "cmn") == "二零二五年十一月二十三日"
    assert speak_date(dt.date(2025, 11, 23), "ko") == "이천이십오 년 십일 월 이십삼 일"
    assert speak_date("2024-06-10", "ko") == "이천이십사 년 유월 십 일"  # irregular months
    assert speak_date("2024-10-01", "ko").endswith("시월 일 일")
    assert speak_date("2025-11-23", "en") == "November twenty-third, twenty twenty-five"
    with pytest.raises(ValueError):
        speak_date("yesterday", "cmn")


def test_normalize_cmn_prompt():
    text = ("您在示例平台购买的39.9元的蓝牙耳机，2025年11月23日下单，共2件，"
            "订单号20251123001，优惠10%，¥199")
    assert normalize_text(text, "cmn") == (
        "您在示例平台购买的三十九点九元的蓝牙耳机，二零二五年十一月二十三日下单，共两件，"
        "订单号二零二五一一二三零零一，优惠百分之十，一百九十九元")


def test_normalize_ko_and_en_prompts():
    assert normalize_text("구매하신 39.9원 상품 (2025-11-23)", "ko") == \
        "구매하신 삼십구 점 구 원 상품 (이천이십오 년 십일 월 이십삼 일)"
    assert normalize_text("You paid 39.9 yuan", "en") == "You paid thirty-nine point nine yuan"
    # text without digits is untouched; an impossible date is read as plain numbers
    assert normalize_text("您满意吗？", "cmn") == "您满意吗？"
    assert "十三" in normalize_text("2025-13-45", "cmn")
