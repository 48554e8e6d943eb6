"""What the loader says when real data is not where, or not what, it expects.

    expected_layout(cfg, task, folder)     # the file the layout expects, what is there
    warn_suspect_training_file(part)       # training on `dev.json`, `test_sample.jsonl`
    warn_fewer_rows_than_a_batch(cfg, parts)
    refuse_missing_rationales(part, source) # dataset.rationale=true, no row has one

Why: `stage=medmcqa data_root=<folder>` with files under other names failed with "file
not found .../train.json" and no way forward; a training file named `dev...` or `test...`
trained without a word, as did a training set of one row for 20 epochs (issue 36).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from medalign.config import DatasetConfig, RunConfig
from medalign.data.records import LoadedData
from medalign.errors import MedalignError

log = logging.getLogger("medalign.data.loading")  # where a user filters the loader's lines


def expected_layout(cfg: DatasetConfig, task: Any, folder: Path) -> str:
    """What the official layout expects in `folder`, what is there instead, and the
    overrides that point at a file of another name."""
    expected = task.split_file(Path("<folder>"))
    relative = expected.relative_to("<folder>") if expected != Path("<folder>") else Path(".")
    found = sorted(p.name for p in folder.iterdir())[:6] if folder.is_dir() else []
    there = f"it holds {', '.join(found)}" if found else "it is empty"
    if not folder.exists():
        there = "it does not exist"
    return (
        f". In the official layout {folder} should hold {relative} for split {cfg.split!r} "
        f"({there}; docs/datasets.md lists each dataset's files); rename your file, or name "
        f"it with dataset.path=<file> (for an evaluation set: datasets.{cfg.name}.path=<file>)"
    )


EVAL_FILE_WORDS = ("dev", "test", "val", "valid", "validation", "eval")


def warn_suspect_training_file(part: LoadedData) -> None:
    """A training file whose name says it is an evaluation split (`dev.json`,
    `test_sample.jsonl`, `phrases_no_exclude_test.jsonl`): training on it is legal (a
    small experiment) but usually a mistake that makes every later score meaningless."""
    if part.source.startswith("hub:"):
        return
    name = Path(part.source).name.lower()
    words = [w for w in re.split(r"[^a-z]+", Path(name).stem) if w]
    if any(w in EVAL_FILE_WORDS for w in words):
        log.warning(
            "dataset %r trains on %s, whose name says it is an evaluation split; if that is "
            "not intended, point dataset.path at the training file",
            part.config.name,
            part.source,
        )


def warn_fewer_rows_than_a_batch(cfg: RunConfig, parts: list[LoadedData]) -> None:
    """Fewer training rows than one batch: every epoch is one short step, and the
    stage's max_steps run as that many epochs over the same rows."""
    batch = getattr(cfg.trainer, "per_device_train_batch_size", None)
    rows = sum(len(p.records) for p in parts)
    if isinstance(batch, int) and rows < batch:
        names = ", ".join(f"{p.config.name} ({len(p.records)} from {p.source})" for p in parts)
        log.warning(
            "training on %d row(s), fewer than one batch (trainer.per_device_train_batch_size="
            "%d): %s; each step repeats the same rows",
            rows,
            batch,
            names,
        )


def refuse_missing_rationales(part: LoadedData, source: str) -> None:
    """dataset.rationale=true on rows none of which has a rationale would train on the
    answer line alone while the run's config says it trained on rationales. `source`:
    where the dataset's Task reads a rationale from (Task.rationale_source)."""
    cfg = part.config
    if not cfg.rationale or not part.records or any(r.rationale for r in part.records):
        return
    raise MedalignError(
        f"dataset {cfg.name!r}: dataset.rationale=true, but none of the {len(part.records)} "
        f"rows of {part.source} has a rationale (its format {cfg.format!r} reads one from "
        f"{source}); set dataset.rationale=false, or train on a file whose rows carry one"
    )
