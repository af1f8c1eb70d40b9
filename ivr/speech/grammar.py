"""Grammars for one question: intents -> phrases, checked against the model's vocabulary.

Vosk silently drops grammar words it does not know ("Ignoring word missing in vocabulary"), which
turns a typo in a survey file into an answer that can never be recognised. So every word of every
phrase is checked when the survey is loaded, and the error names word, phrase, intent, question
and file. Phrases are space-separated vocabulary words (Chinese too: "不 满意", not "不满意").

Recipe (measured on espeak Korean telephone audio, the survey's questions): the plain list of the
question's phrases plus the unk token. Vosk estimates a bigram from the list with a fixed 0.5
backoff, so repeating phrases changes nothing among them; ~50 filler words as a garbage model in
the same grammar buried the right phrase (it was among the n-best for 37% of answers instead of
92%), and as a second decoder they doubled the CPU for little more precision. Out-of-grammar
speech is left to the confidence model (ivr.speech.intents).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class GrammarError(ValueError):
    """A phrase cannot be recognised with this model; the message says where and why."""


class Vocabulary(Protocol):
    unk_token: str

    def has_word(self, word: str) -> bool: ...


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
) -> list[str]:
    """The phrase list for Vosk: each of the intents' phrases once, then the unk token.

    Raises GrammarError on the first problem (see :func:`check_phrases` for all of them).
    """
    problems = check_phrases(intents, model, question=question, source=source)
    if problems:
        raise GrammarError(problems[0])
    phrases: list[str] = []
    for intent_phrases in intents.values():
        for raw in intent_phrases:
            phrase = normalize_phrase(raw)
            if phrase not in phrases:
                phrases.append(phrase)
    return phrases + [model.unk_token]


def question_grammar(
    intents: Mapping[str, Sequence[str]], model: Vocabulary, *, language: str, question: str,
    source: str,
) -> list[str]:
    """The production grammar of a question (``language`` kept for callers: the recipe is the
    same for every language)."""
    del language
    return build_grammar(intents, model, question=question, source=source)
