"""Drop training questions that also appear in an evaluation set.

Real MedQA and MedMCQA rows circulate in many public copies, so a training file can
hold test questions verbatim or lightly edited. A row's text is its question plus its
context (abstract or report: RadQA asks the same questions of every report, so the
question alone would flag them all). Exact duplicates are found by the normalized text;
near-duplicates by a shared normalized word n-gram (13 by default, as in the GPT-3 and
Llama contamination studies); texts shorter than n words are compared whole.
"""

from __future__ import annotations

import re
from collections import Counter

from medalign.data.records import QARecord

_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> list[str]:
    """Lower-cased alphanumeric words: punctuation, case and spacing never hide a copy."""
    return _WORD.findall(text.lower())


def record_text(record: QARecord) -> list[str]:
    return normalize(" ".join([record.question, *record.context]))


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class EvalIndex:
    """The n-grams and normalized questions of every evaluation set, to test rows against."""

    def __init__(self, n: int = 13) -> None:
        self.n = n
        self.exact: dict[tuple[str, ...], str] = {}
        self.grams: dict[tuple[str, ...], str] = {}

    def add(self, name: str, records: list[QARecord]) -> None:
        for record in records:
            words = record_text(record)
            self.exact.setdefault(tuple(words), name)
            for gram in ngrams(words, self.n):
                self.grams.setdefault(gram, name)

    def match(self, record: QARecord) -> tuple[str, str] | None:
        """(kind, eval set) for an exact or near duplicate, else None."""
        words = record_text(record)
        if tuple(words) in self.exact:
            return "exact", self.exact[tuple(words)]
        for gram in ngrams(words, self.n):
            if gram in self.grams:
                return "near", self.grams[gram]
        return None


def split_contaminated(
    records: list[QARecord], index: EvalIndex
) -> tuple[list[QARecord], Counter[str]]:
    """(clean records, counts by "kind:eval set") for the rows that overlap."""
    clean, counts = [], Counter()
    for record in records:
        hit = index.match(record)
        if hit is None:
            clean.append(record)
        else:
            counts[f"{hit[0]}:{hit[1]}"] += 1
    return clean, counts
