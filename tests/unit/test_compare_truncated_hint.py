"""A truncated predictions.jsonl in stage=compare (issue 37): the error suggested
dataset.on_bad_row=skip, which compare never reads (the same error again). It now says
what made the file and how to make it whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.compare.runs import resolve_entry
from medalign.errors import MedalignError
from tests.run_fixtures import write_eval_run


def test_a_cut_predictions_file_is_one_line_without_the_loaders_hint(tmp_path: Path) -> None:
    run = write_eval_run(tmp_path / "a", {"medqa": [1.0, 0.0, 1.0]}, seed=1)
    path = run / "eval" / "predictions.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the last row cut midway
    with pytest.raises(MedalignError) as refused:
        resolve_entry(str(run))
    message = str(refused.value)
    assert str(path) in message and "\n" not in message
    assert "on_bad_row" not in message
    assert "evaluat" in message  # what writes the file, to be run again
