"""Parse the answer out of generated text, tolerant of markdown and case.

Choices (letters, or yes/no/maybe) are read from, in order: the last `Final answer:` line;
else the last "the answer is X" / "Answer: X" phrase; else a text (or last line) that is
only the choice (`**B**`). Within that answer a letter counts when it is the whole answer
("C", "(c)", "b)"), labels the answer ("C. Vitamin A deficiency", "(B) Cholesterol
embolization"), or is named as an option ("Hepatitis B (option D)"). A capital "A" or
"I" inside a sentence is English, not a letter. An answer that names two different
choices ("A or C"), or none, is unparseable (None): reported as a rate, never silently
scored as a valid wrong answer.

Spans (RadQA) are read from the `Final answer:` line only; the configured no-answer
phrase gives "", and a non-answer (an option letter, or text that SQuAD normalization
empties) is unparseable, never a "no answer".

    >>> parse_choice("Final answer: C. Vitamin A deficiency", ["A", "B", "C", "D"])
    'C'
"""

from __future__ import annotations

import re

from medalign.eval.squad import normalize_answer

_FINAL = re.compile(r"\bfinal\s+answer\b\s*(?:is\b)?\s*[:：\-]?\s*(.*)", re.IGNORECASE)
# "the answer is B", "Answer: b)"; then, only when no answer marker, "the correct option is C"
_IS = r"\s*(?:(?:is|would\s+be)\b\s*[:：]?|[:：])\s*(.*)"
_ANSWER_IS = re.compile(r"\banswer" + _IS, re.IGNORECASE)
_OPTION_IS = re.compile(r"\b(?:option|choice)" + _IS, re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#>]")
_WORD = re.compile(r"[A-Za-z]+")
# the whole answer is one letter: "C", "(c)", "b)", "D.", "(B)."
_LONE = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
# a letter named as an option anywhere: "option D", "choice (d)", "letter C"
_NAMED = re.compile(r"\b(?:option|choice|letter)\s*\(?([A-Za-z])\b\)?", re.IGNORECASE)
# letters joined as alternatives: "A or C", "A, C", "B and D", "A/C"
_LIST = re.compile(
    r"\(?([A-Z])\)?(?:\s*(?:,|/|&|\bor\b|\band\b)\s*\(?([A-Z])\)?(?![A-Za-z0-9'’-]))+"
)
# a letter labelling the answer: "C. text", "(B) text", "c) text", "C: text", "C - text"
_LABEL = re.compile(r"\(([A-Za-z])\)|([A-Z])(?:[.):,]|\s+[-–—])|([a-z])\)")
# another option labelled after a connector: "C. Scurvy or D. Rickets"
_ALSO = re.compile(r"(?:\bor\b|\band\b|,|/|;)\s*\(?([A-Z])(?:[.)]|\s*$|\s*(?:,|/|\bor\b|\band\b))")
# a capital letter opening the answer: "B is correct"; "A" only before a verb or "because"
# ("A patient ..." is English), "I" never ("I think ...")
_OPENING = re.compile(r"([B-HJ-Z])\s|(A)\s+(?:is|was|because|since|would|seems|fits)\b")


def _clean(line: str) -> str:
    return _MARKDOWN.sub("", line).strip()


def final_answer_text(text: str) -> str | None:
    """What follows the last `Final answer:` marker, markdown stripped; None if absent."""
    found = None
    for line in text.splitlines():
        match = _FINAL.search(_clean(line))
        if match:
            found = match.group(1).strip()
    return found


def _candidates(text: str) -> list[str]:
    """Where the answer may be, most trusted first: the last `Final answer:` alone if there
    is one; else each "the answer is X" / "Answer: X" (last first), then each "the correct
    option is X"; else the text's last line when it is a single word ("**B**", "Yes.")."""
    final = final_answer_text(text)
    if final is not None:
        inner = _ANSWER_IS.search(final)  # "Final answer: I think the answer is C"
        return [inner.group(1).strip() if inner else final]
    lines = [_clean(line) for line in text.splitlines() if _clean(line)]
    found = [
        m.group(1).strip()
        for pattern in (_ANSWER_IS, _OPTION_IS)
        for m in reversed([pattern.search(line) for line in lines])
        if m
    ]
    if not found and lines and len(_WORD.findall(lines[-1])) == 1:
        found = [lines[-1]]
    return found


def _letters(answer: str) -> set[str]:
    """The option letters an answer names (upper case); empty when it names none."""
    lone = _LONE.fullmatch(answer)
    if lone:
        return {lone.group(1).upper()}
    named = {m.upper() for m in _NAMED.findall(answer)}
    if named:
        return named
    listed = _LIST.match(answer)
    if listed and listed.end() == len(answer.rstrip(".")):
        return set(re.findall(r"[A-Z]", listed.group(0)))
    label = _LABEL.match(answer)
    if label:
        letter = next(g for g in label.groups() if g).upper()
        return {letter, *_ALSO.findall(answer[label.end() :])}
    opening = _OPENING.match(answer)
    return {opening.group(1) or opening.group(2)} if opening else set()


def _named(answer: str, choices: list[str]) -> set[str]:
    """The choices an answer names: letters, an option's whole text, or the yes/no/maybe
    word it opens with (and any other choice word it also names: "Yes, but maybe not"
    names two)."""
    if all(len(c) == 1 for c in choices):
        return _letters(answer)
    said = normalize_answer(answer)
    whole = {c for c in choices if normalize_answer(c) == said}
    if whole:  # the text of an option, stated whole (dataset.answer_as=text)
        return whole
    words = [w.lower() for w in _WORD.findall(answer)]
    if not words or words[0] not in choices:
        return set()
    return {w for w in words if w in choices}


def parse_choice(text: str, choices: list[str]) -> str | None:
    """The single choice (a letter, or yes/no/maybe) the answer names, else None.

    The first candidate answer that names anything decides: exactly one valid choice is
    the answer; two choices, or one that is not offered, is unparseable.
    """
    for answer in _candidates(text):
        named = _named(answer, choices)
        if named:
            return named.pop() if len(named) == 1 and next(iter(named)) in choices else None
    return None


def parse_span(text: str, no_answer: str) -> str | None:
    """The answer span ("" for 'the report does not answer'), or None if unparseable.

    The no-answer phrase matches after SQuAD normalization (case, punctuation, articles,
    spacing: the differences the scorer itself ignores). A lone option letter ("A") or an
    answer that normalizes to nothing ("the.", "") is not an answer at all: None.
    """
    answer = final_answer_text(text)
    if answer is None:
        return None
    normalized = normalize_answer(answer)
    if normalized and normalized == normalize_answer(no_answer):
        return ""
    if not normalized or _LONE.fullmatch(answer):
        return None
    return answer
