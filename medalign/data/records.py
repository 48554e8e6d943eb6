"""The normalized record every loader produces and everything downstream reads.

One shape for all formats (yes/no/maybe, multiple choice, extractive span), so
formatting, evaluation and preference building never see a dataset's raw field names.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from medalign.errors import MedalignError, where

log = logging.getLogger(__name__)
Messages = list[dict[str, str]]  # chat turns: [{"role": "user", "content": "..."}, ...]


@dataclass
class QARecord:
    id: str
    question: str
    context: list[str]
    answer: str | list[str]  # letter | yes/no/maybe | spans (empty list = unanswerable)
    options: dict[str, str] | None = None
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedData:
    records: list[QARecord]
    source: str
    skipped: dict[str, int]
    config: Any = None  # the DatasetConfig the rows were read with

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalized records: changes whenever the training data does."""
        h = hashlib.sha256()
        for record in self.records:
            h.update(json.dumps(vars(record), sort_keys=True).encode())  # = asdict, 5x faster
        return h.hexdigest()[:16]


class BadRows:
    """Applies `dataset.on_bad_row`: raise at the first bad row, or skip and count."""

    def __init__(
        self, source: str, on_bad_row: str, hint: str = "dataset.on_bad_row=skip skips such rows"
    ) -> None:
        self.source, self.hint = source, hint  # hint: what the reader of this file can do
        self.skip = on_bad_row == "skip"
        self.counts: Counter[str] = Counter()

    def reject(self, row: object, field_name: str, problem: str) -> None:
        message = f"{where(self.source, row, field_name)}: {problem}"
        if not self.skip:
            raise MedalignError(f"{message} ({self.hint})")
        self.counts[f"{field_name}: {problem}"] += 1
        log.warning("skipped %s", message)
