"""A value with nothing to count reads `n/a` in every table, never `nan` (#12 trial)."""

from __future__ import annotations

import re

from medalign.eval.cells import number
from medalign.eval.report import summary_markdown


def test_number_marks_null_and_nan_as_nothing_to_count() -> None:
    assert [number(None), number(float("nan")), number(0.25)] == ["n/a", "n/a", "0.250"]


def test_summary_shows_an_uncountable_rate_as_na() -> None:
    nan = float("nan")
    results = {
        "radqa": {
            "split": "test",
            "mode": "generate",
            "n": 4,
            "metrics": {
                "f1": {"value": 0.0, "n": 4, "ci": [0.0, 0.0]},
                "unparseable_rate": {"value": 1.0, "n": 4},
                "false_confidence": {"value": nan, "n": 0, "ci": [nan, nan]},
            },
        }
    }
    summary = summary_markdown(results)
    assert not re.search(r"\bnan\b", summary, re.IGNORECASE), summary
    assert "| radqa | false_confidence | n/a | n/a | 0 |" in summary
