"""Grammars for one question: intents -> phrases, checked against the model's vocabulary.

Vosk silently drops grammar words it does not know ("Ignoring word missing in vocabulary"), which
turns a typo in a survey file into an answer that can never be recognised. So every word of every
phrase is checked when the survey is loaded, and the error names word, phrase, intent, question
and file. Phrases are space-separated vocabulary words (Chinese too: "不 满意", not "不满意").

Recipe (measured on espeak Korean telephone audio, clean, dev voices, the survey's questions): the
plain list of the question's phrases plus the unk token decodes best (raw best guess right 49%);
adding ~50 *filler* words as a garbage model cost a third of that (33%), and repeating phrases
(`boost` 3) did not help (46-48%). So :func:`question_grammar` is the plain list. The
fillers live on as a second opinion: :func:`check_grammar` is the same list plus fillers, decoded
in parallel by :class:`~ivr.speech.recognizer.TurnRecognizer`; an answer is accepted only when
both decoders agree (out-of-grammar speech lands on fillers there, in-grammar speech mostly does
not). Listing the phrases 3 times in the filler grammar, so that it vetoes fewer real answers,
accepted no more answers on TEST and let more wrong ones through (clean precision 0.96 -> 0.89).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol


class GrammarError(ValueError):
    """A phrase cannot be recognised with this model; the message says where and why."""


class Vocabulary(Protocol):
    unk_token: str

    def has_word(self, word: str) -> bool: ...


# Garbage words per language: frequent words that no answer contains (single syllables were tried
# and stole too many real answers). They compete with the answer phrases so that other speech is
# decoded as fillers rather than forced into an answer. Words the model lacks and words used by
# the question's phrases are skipped.
_KO_FILLERS = """
오늘 날씨 그냥 지금 뭐 왜 어디 누구 정말 진짜 그래서 그런데 여보세요 안녕하세요 감사합니다 시간
이거 저거 그거 택배 아직 생각 잠깐 얼마 가격 주문 제품 상품 어제 내일 우리 저희 제가 회사 집
사람들 친구 다음 주 그러니까 근데 그게 이제 좀 많이 조금 너무 아주 혹시 여기 거기
"""
FILLERS: dict[str, tuple[str, ...]] = {"ko": tuple(_KO_FILLERS.split())}


def normalize_phrase(phrase: str) -> str:
    """Collapse whitespace: Vosk splits phrases on single spaces."""
    return " ".join(phrase.split())


def check_phrases(
    intents: Mapping[str, Sequence[str]],
    model: Vocabulary,
    *,
    question: str,
    source: str,
) -> list[str]:
    """Every problem with this question's phrases (empty list: usable as a grammar)."""
    problems: list[str] = []
    where = f"question {question!r} in {source}"
    seen: dict[str, str] = {}
    if not intents:
        problems.append(f"{where}: no intents declared")
    for intent, phrases in intents.items():
        if not phrases:
            problems.append(f"{where}: intent {intent!r} has no phrases")
        for raw in phrases:
            phrase = normalize_phrase(raw)
            if not phrase:
                problems.append(f"{where}: intent {intent!r} has an empty phrase")
                continue
            other = seen.get(phrase)
            if other is not None and other != intent:
                problems.append(f"{where}: phrase {phrase!r} is listed under both intents "
                                f"{other!r} and {intent!r}")
            seen[phrase] = intent
            for word in phrase.split():
                if not model.has_word(word):
                    problems.append(
                        f"{where}: word {word!r} of phrase {phrase!r} (intent {intent!r}) is "
                        f"not in the speech model's vocabulary; rephrase it with words the "
                        f"model knows (check with `ivr speech words`)"
                    )
    return problems


def build_grammar(
    intents: Mapping[str, Sequence[str]],
    model: Vocabulary,
    *,
    question: str,
    source: str,
    fillers: Iterable[str] = (),
    boost: int = 1,
) -> list[str]:
    """The phrase list for Vosk: the intents' phrases, optional filler words, the unk token.

    Vosk estimates its bigram from the list, so repeating each phrase ``boost`` times makes the
    answers that much more likely than the fillers. Raises GrammarError on the first problem (see
    :func:`check_phrases` for all of them).
    """
    problems = check_phrases(intents, model, question=question, source=source)
    if problems:
        raise GrammarError(problems[0])
    phrases: list[str] = []
    words: set[str] = set()
    for intent_phrases in intents.values():
        for raw in intent_phrases:
            phrase = normalize_phrase(raw)
            if phrase not in phrases:
                phrases.append(phrase)
            words.update(phrase.split())
    extra = [f for f in dict.fromkeys(fillers) if f not in words and model.has_word(f)]
    return phrases * max(1, boost) + extra + [model.unk_token]


def question_grammar(
    intents: Mapping[str, Sequence[str]], model: Vocabulary, *, language: str, question: str,
    source: str,
) -> list[str]:
    """The production recipe: the phrases once each, then the unk token (no fillers, no boost).

    ``language`` is kept for callers; the language-specific fillers go into :func:`check_grammar`.
    """
    del language
    return build_grammar(intents, model, question=question, source=source)


def check_grammar(grammar: Sequence[str], model: Vocabulary, *, language: str) -> list[str]:
    """The second-opinion grammar: ``grammar`` plus the language's filler words (garbage model)."""
    words = {w for phrase in grammar for w in phrase.split()}
    body = [p for p in grammar if p != model.unk_token]
    extra = [f for f in filler_words(language) if f not in words and model.has_word(f)]
    return body + extra + [model.unk_token]


def filler_words(language: str) -> tuple[str, ...]:
    """The default garbage words for ``language`` (empty when none are known)."""
    return FILLERS.get(language, ())
