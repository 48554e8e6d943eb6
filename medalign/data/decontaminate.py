"""Drop training questions that also appear in an evaluation set.

Real MedQA and MedMCQA rows circulate in many public copies, so a training file can
hold test questions verbatim or lightly edited. A row's text is its question plus its
context (abstract or report: RadQA asks the same questions of every report, so the
question alone would flag them all). Exact duplicates are found by the normalized text.
Near duplicates by normalized word n-grams (13 by default, as in the GPT-3 and Llama
contamination studies), with the two safeguards of those studies against false hits:

- boilerplate is ignored: an n-gram found in more than `boilerplate_rows` rows of the
  evaluation set itself ("which of the following is the most appropriate next step in the
  management of this patient") says nothing about a copy;
- a near duplicate has at least `min_overlap` of its words inside n-grams it shares with
  one evaluation row (Llama 2's token coverage, which calls a sample dirty above 80%;
  PaLM counts 70% of 8-grams). Coverage, unlike a share of n-grams, survives light edits:
  a word changed every 15 words leaves 13% of the 13-grams but 93% of the words covered.

Texts shorter than n words are compared whole. Set by `dataset.ngram`,
`dataset.ngram_boilerplate_rows` and `dataset.ngram_min_overlap`:

    index = EvalIndex.from_config(cfg); index.add("medqa", eval_records)
    result = decontaminate(train_records, index)   # .clean, .dropped (why), .counts
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from medalign.data.records import QARecord
from medalign.errors import MedalignError

_WORD = re.compile(r"[a-z0-9]+")

Gram = tuple[str, ...]


def normalize(text: str) -> list[str]:
    """Lower-cased alphanumeric words: punctuation, case and spacing never hide a copy."""
    return _WORD.findall(text.lower())


def record_text(record: QARecord) -> list[str]:
    return normalize(" ".join([record.question, *record.context]))


def ngrams(words: list[str], n: int) -> set[Gram]:
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class Overlap:
    """Why a training row was flagged: which eval row it copies, and how much of it."""

    id: str
    kind: str  # "exact" | "near"
    eval_set: str
    eval_id: str
    overlap: float  # share of the row's words inside (non-boilerplate) n-grams of the eval row

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _EvalSet:
    ids: list[str] = field(default_factory=list)
    exact: dict[Gram, int] = field(default_factory=dict)
    rows: dict[Gram, list[int]] = field(default_factory=lambda: defaultdict(list))


def _starts(words: list[str], n: int) -> list[tuple[int, Gram]]:
    """(start, n-gram) at every position; a text shorter than n is one n-gram."""
    if len(words) < n:
        return [(0, tuple(words))] if words else []
    return [(i, tuple(words[i : i + n])) for i in range(len(words) - n + 1)]


def _covered(starts: list[int], n: int, length: int) -> int:
    """How many of `length` words lie inside the n-grams starting at `starts`."""
    covered, end = 0, 0
    for start in sorted(starts):
        stop = min(start + n, length)
        covered += max(0, stop - max(start, end))
        end = max(end, stop)
    return covered


class EvalIndex:
    """The n-grams and normalized texts of every evaluation set, to test rows against."""

    def __init__(
        self, n: int = 13, boilerplate_rows: int | None = 5, min_overlap: float = 0.5
    ) -> None:
        if not 0.0 <= min_overlap <= 1.0:
            raise MedalignError(
                f"dataset.ngram_min_overlap={min_overlap!r}: a fraction between 0 and 1"
            )
        if boilerplate_rows is not None and boilerplate_rows < 1:
            raise MedalignError(
                f"dataset.ngram_boilerplate_rows={boilerplate_rows!r}: at least 1, or null "
                "to keep every n-gram"
            )
        if n < 1:
            raise MedalignError(f"dataset.ngram={n!r}: at least 1")
        self.n = n
        self.boilerplate_rows = boilerplate_rows
        self.min_overlap = min_overlap
        self.sets: dict[str, _EvalSet] = {}

    @classmethod
    def from_config(cls, cfg: Any) -> EvalIndex:
        """From a DatasetConfig's `ngram`, `ngram_boilerplate_rows`, `ngram_min_overlap`."""
        return cls(cfg.ngram, cfg.ngram_boilerplate_rows, cfg.ngram_min_overlap)

    def add(self, name: str, records: list[QARecord]) -> None:
        table = self.sets.setdefault(name, _EvalSet())
        cap = None if self.boilerplate_rows is None else self.boilerplate_rows + 1
        for record in records:
            row = len(table.ids)
            table.ids.append(record.id)
            words = record_text(record)
            table.exact.setdefault(tuple(words), row)
            for gram in ngrams(words, self.n):
                rows = table.rows[gram]
                if cap is None or len(rows) < cap:  # past the cap it is boilerplate anyway
                    rows.append(row)

    def _boilerplate(self, rows: list[int]) -> bool:
        return self.boilerplate_rows is not None and len(rows) > self.boilerplate_rows

    def overlap(self, record: QARecord) -> Overlap | None:
        """The best exact or near hit of `record` in any evaluation set, else None."""
        words = record_text(record)
        for name, table in self.sets.items():
            if tuple(words) in table.exact:
                row = table.exact[tuple(words)]
                return Overlap(record.id, "exact", name, table.ids[row], 1.0)
        starts = _starts(words, self.n)
        best: Overlap | None = None
        for name, table in self.sets.items():
            by_row: dict[int, list[int]] = defaultdict(list)  # eval row -> shared n-gram starts
            for start, gram in starts:
                rows = table.rows.get(gram)
                if rows and not self._boilerplate(rows):
                    for row in rows:
                        by_row[row].append(start)
            for row, found in by_row.items():
                fraction = _covered(found, self.n, len(words)) / max(len(words), 1)
                if fraction >= self.min_overlap and (best is None or fraction > best.overlap):
                    best = Overlap(record.id, "near", name, table.ids[row], round(fraction, 4))
        return best

    def match(self, record: QARecord) -> tuple[str, str] | None:
        """(kind, eval set) for an exact or near duplicate, else None."""
        hit = self.overlap(record)
        return None if hit is None else (hit.kind, hit.eval_set)


@dataclass
class Decontaminated:
    """Rows kept, rows dropped with their reason, and counts per evaluation set."""

    clean: list[QARecord]
    dropped: list[Overlap]
    counts: dict[str, dict[str, int]]  # eval set -> {"exact": n, "near": n}

    def summary(self) -> dict[str, Any]:
        return {"counts": self.counts, "dropped": [d.as_dict() for d in self.dropped]}


def decontaminate(records: list[QARecord], index: EvalIndex) -> Decontaminated:
    """Split `records` into clean rows and overlaps, each with why it overlaps."""
    clean, dropped = [], []
    counts = {name: {"exact": 0, "near": 0} for name in index.sets}
    for record in records:
        hit = index.overlap(record)
        if hit is None:
            clean.append(record)
        else:
            dropped.append(hit)
            counts[hit.eval_set][hit.kind] += 1
    return Decontaminated(clean, dropped, counts)


def split_contaminated(
    records: list[QARecord], index: EvalIndex
) -> tuple[list[QARecord], Counter[str]]:
    """(clean records, counts by "kind:eval set") for the rows that overlap."""
    result = decontaminate(records, index)
    return result.clean, Counter(f"{d.kind}:{d.eval_set}" for d in result.dropped)
