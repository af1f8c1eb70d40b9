"""Message lint and the rules file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.outbox.config import OutboxConfig, OutboxConfigError, load_outbox_config
from ivr.outbox.lint import lint, sms_length

CFG = OutboxConfig(blocked_words=["贷款", "Free Gift"])


def codes(text: str, config: OutboxConfig = CFG) -> list[str]:
    return [i.code for i in lint(text, config).errors]


def test_link_without_spaces_is_an_error() -> None:
    result = lint("您的退款已受理，详情点击https://h5.example.cn/r/abc查看", CFG)
    assert not result.ok
    assert [i.code for i in result.errors] == ["link-spacing"]
    assert "'击' and '查'" in result.errors[0].message
    assert result.links == ("https://h5.example.cn/r/abc",)
    err = result.errors[0]
    assert result.text[err.start:err.end] == "https://h5.example.cn/r/abc"


@pytest.mark.parametrize("text", [
    "详情 https://h5.example.cn/r/abc 查看",
    "https://h5.example.cn/r/abc 查看",
    "详情见\nhttps://h5.example.cn/r/abc",
    "see www.example.com/x today",
])
def test_link_with_spaces_or_text_edges_is_fine(text: str) -> None:
    assert codes(text) == []


@pytest.mark.parametrize("text, code", [
    ("点击t.cn/abc领取", "link-spacing"),  # bare short link
    ("详情 https://h5.example.cn/r/abc，谢谢", "link-spacing"),  # full-width comma
    ("Details: https://x.com/a.", "link-punctuation"),
])
def test_other_broken_links(text: str, code: str) -> None:
    assert code in codes(text)


def test_blocked_words_case_insensitive_every_occurrence() -> None:
    result = lint("低息贷款，FREE GIFT 等你，贷款秒批", CFG)
    assert [i.code for i in result.errors] == ["blocked-word"] * 3
    assert all("blocked-word list" in i.message for i in result.errors)
    assert codes("正常的退款通知") == []


def test_length_and_segments_gsm_vs_ucs2() -> None:
    assert sms_length("a" * 160) == ("GSM-7", 160, 1, 160)
    assert sms_length("a" * 161) == ("GSM-7", 161, 2, 153)
    assert sms_length("{" * 80) == ("GSM-7", 160, 1, 160)  # extension chars count twice
    assert sms_length("好" * 70) == ("UCS-2", 70, 1, 70)
    assert sms_length("好" * 71) == ("UCS-2", 71, 2, 67)
    assert sms_length("好" * 135) == ("UCS-2", 135, 3, 67)
    r = lint("好" * 202, CFG)  # 4 parts > max 3
    assert "too-long" in [i.code for i in r.errors] and r.segments == 4
    assert "202 UCS-2 characters need 4 SMS parts" in r.summary()


def test_signature_required_when_configured() -> None:
    cfg = OutboxConfig(signature="【示例平台】")
    assert codes("您的退款已受理", cfg) == ["signature"]
    assert codes("【示例平台】您的退款已受理", cfg) == []
    assert codes("您的退款已受理【示例平台】", cfg) == []


def test_shipped_rules_and_templates_lint_clean() -> None:
    cfg = load_outbox_config(Path(__file__).parents[2] / "config" / "outbox.yaml")
    assert "贷款" in cfg.blocked_words
    fields = {"product": "蓝牙耳机", "price": "99", "remedy_text": "10元优惠券",
              "h5_url": "https://h5.example.cn/s/1", "merchant": "M", "host": "H",
              "platform": "P", "order_id": "o1", "buyer_name": "王", "remedy": "refund"}
    for kind, template in cfg.templates.items():
        result = lint(template.format(**fields), cfg)
        assert result.ok, (kind, result.summary())


def test_config_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "outbox.yaml"
    path.write_text("blocked_words: [a]\nretry:\n  max_tries: 0\n"
                    "templates:\n  h5: '{nope}'\n", encoding="utf-8")
    with pytest.raises(OutboxConfigError) as err:
        load_outbox_config(path)
    text = str(err.value)
    assert f"{path}:3: retry.max_tries:" in text
    assert f"{path}:4: templates:" in text and "'nope'" in text
    path.write_text("max_segments: [\n", encoding="utf-8")
    with pytest.raises(OutboxConfigError, match="not valid YAML"):
        load_outbox_config(path)
    with pytest.raises(OutboxConfigError, match="file not found"):
        load_outbox_config(tmp_path / "missing.yaml")
