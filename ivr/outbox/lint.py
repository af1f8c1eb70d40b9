"""Message lint: what makes an SMS fail on the buyer's phone or in the carrier's filter.

* A link must have whitespace (or the start/end of the text) on both sides: many phones extend a
  link into adjacent Chinese characters or punctuation, and the buyer opens a broken address.
* A link must not end in punctuation, which phones take as part of the address.
* Words carriers block (``blocked_words`` in config/outbox.yaml) are flagged.
* Length and SMS part count: GSM-7 allows 160 characters in one part, 153 per part when split;
  any other character (all Chinese text) makes the whole message UCS-2: 70 in one part, 67 per part.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ivr.outbox.config import OutboxConfig

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # two septets each (escape + char)

_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_TLDS = "com|cn|net|org|info|io|me|cc|co|top|xyz|shop|vip|ly|link|site"
URL_RE = re.compile(
    rf"(?:https?://|www\.){_URL_CHARS}+"
    rf"|(?<![A-Za-z0-9@.\-])(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})\b(?:/{_URL_CHARS}*)?",
    re.IGNORECASE,
)
_TRAILING_PUNCT = ".,;:!?)]'\""


@dataclass(frozen=True)
class LintIssue:
    code: str  # link-spacing | link-punctuation | blocked-word | too-long | signature | empty | ...
    message: str
    start: int = 0  # character span in the text
    end: int = 0


@dataclass(frozen=True)
class LintResult:
    text: str
    errors: tuple[LintIssue, ...]
    warnings: tuple[LintIssue, ...]
    encoding: str  # GSM-7 | UCS-2
    length: int  # characters as the encoding counts them (septets / UTF-16 units)
    segments: int
    per_segment: int  # capacity of one part at this length (160/153 or 70/67)
    links: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        head = (f"{self.length} chars, {self.encoding}, {self.segments} SMS part(s) "
                f"({self.per_segment} per part)")
        lines = [head]
        lines += [f"ERROR {i.code}: {i.message}" for i in self.errors]
        lines += [f"warning {i.code}: {i.message}" for i in self.warnings]
        return "\n".join(lines)


def sms_length(text: str) -> tuple[str, int, int, int]:
    """(encoding, length in units, segments, capacity per segment) of ``text``."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # emoji take two units
        single, multi, encoding = 70, 67, "UCS-2"
    if units == 0:
        return encoding, 0, 0, single
    if units <= single:
        return encoding, units, 1, single
    return encoding, units, math.ceil(units / multi), multi


def lint(text: str, config: OutboxConfig) -> LintResult:
    errors: list[LintIssue] = []
    warnings: list[LintIssue] = []
    if not text.strip():
        errors.append(LintIssue("empty", "the message is empty"))
    links = []
    for m in URL_RE.finditer(text):
        url, start, end = m.group(0), m.start(), m.end()
        links.append(url)
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        touching = [c for c in (before, after) if c and not c.isspace()]
        if touching:
            errors.append(LintIssue(
                "link-spacing",
                f"link {url!r} touches {' and '.join(repr(c) for c in touching)}: put a space "
                "(or line break) on both sides of a link, or phones open a broken address",
                start, end))
        if url[-1] in _TRAILING_PUNCT:
            errors.append(LintIssue(
                "link-punctuation",
                f"link {url!r} ends with {url[-1]!r}, which phones take as part of the address; "
                "put a space before the punctuation",
                end - 1, end))
    folded = text.casefold()
    for word in config.blocked_words:
        needle = word.casefold()
        pos = folded.find(needle)
        while pos >= 0:
            errors.append(LintIssue(
                "blocked-word", f"{word!r} is on the carriers' blocked-word list "
                "(config/outbox.yaml blocked_words)", pos, pos + len(needle)))
            pos = folded.find(needle, pos + len(needle))
    if config.signature and not (text.strip().startswith(config.signature)
                                 or text.strip().endswith(config.signature)):
        errors.append(LintIssue(
            "signature", f"the message must start or end with the signature "
            f"{config.signature!r} registered with the carrier"))
    encoding, units, segments, per = sms_length(text)
    if segments > config.max_segments:
        errors.append(LintIssue(
            "too-long", f"{units} {encoding} characters need {segments} SMS parts; "
            f"at most {config.max_segments} allowed", 0, len(text)))
    if encoding == "UCS-2":
        odd = sorted({c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENDED})
        if len(odd) <= 2 and all(ord(c) < 0x2E80 for c in odd):  # not CJK text: likely a typo
            warnings.append(LintIssue(
                "ucs2", f"{''.join(odd)!r} forces UCS-2 (70 chars per SMS instead of 160)"))
    return LintResult(text=text, errors=tuple(errors), warnings=tuple(warnings),
                      encoding=encoding, length=units, segments=segments, per_segment=per,
                      links=tuple(links))
