"""The rows an SFT stage validates on: the dataset's own dev split, or a seeded share of
its training rows; never rows of an evaluation set.

    python -m medalign stage=medqa trainer.eval_steps=20                      (auto)
    python -m medalign stage=medqa trainer.eval_steps=20 trainer.validation_split=fraction

Why a module of its own: which rows are held out decides whether `eval/loss` means
anything. `trainer.validation_split=auto` uses the split the dataset's Task names as its
dev split (`Task.dev_split`: MedQA and RadQA `dev`, MMLU `val`, instruction files
`validation`) when that split is neither the training split nor an evaluation split
(MedMCQA's `dev` is its evaluation set, so MedMCQA holds out a fraction) and its file is
there (read with the same `dataset.limit`); otherwise `trainer.validation_fraction` of
the training rows, drawn with the root `seed` after decontamination, so they were already
checked against the evaluation sets.
Every copy of a held-out row leaves the training set (a `dataset.mix` weight > 1 repeats
rows). Each part of a mix is split the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from medalign.config import DatasetConfig, RunConfig
from medalign.data.loading import TrainingData, get_task, load_records, resolve_path
from medalign.data.records import QARecord
from medalign.errors import MedalignError

log = logging.getLogger(__name__)


@dataclass
class ValidationData:
    """The held-out rows of each training part, and where they came from."""

    parts: list[tuple[list[QARecord], DatasetConfig]]
    sources: dict[str, str] = field(default_factory=dict)  # dataset -> "split:dev" | "fraction:0.1"

    @property
    def rows(self) -> int:
        return sum(len(records) for records, _ in self.parts)

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rows_by_dataset": {c.name: len(r) for r, c in self.parts},
            "source": self.sources,
        }


def hold_out(cfg: RunConfig, data: TrainingData) -> ValidationData | None:
    """Split validation rows off `data` (in place) when `trainer.eval_steps` is set."""
    t = cfg.trainer
    if t.eval_steps is None:
        return None
    out = ValidationData(parts=[])
    for part in data.parts:
        dcfg = part.config
        split = _dev_split(cfg, dcfg)
        if split is not None:
            records = load_records(dcfg, cfg.data_root, split=split).records
            out.sources[dcfg.name] = f"split:{split}"
        else:
            records, part.records = _fraction(part.records, t.validation_fraction, cfg.seed, dcfg)
            out.sources[dcfg.name] = f"fraction:{t.validation_fraction}"
        out.parts.append((records, dcfg))
        log.info(
            "validation: %d rows of %s (%s); %d training rows",
            len(records),
            dcfg.name,
            out.sources[dcfg.name],
            len(part.records),
        )
    return out


def evaluation_splits(cfg: RunConfig, dcfg: DatasetConfig) -> set[str]:
    """The splits of `dcfg`'s dataset that evaluation reads: never validated on."""
    splits = {dcfg.eval_split}
    catalogue = cfg.datasets.get(dcfg.name)
    if catalogue is not None:
        splits.add(catalogue.eval_split)
    if cfg.eval.splits and dcfg.name in cfg.eval.splits:
        splits.add(cfg.eval.splits[dcfg.name])
    return splits


def _dev_split(cfg: RunConfig, dcfg: DatasetConfig) -> str | None:
    """The split to validate on, or None for a held-out fraction."""
    asked = cfg.trainer.validation_split
    if asked == "fraction":
        return None
    if asked != "auto":  # a split name: it must exist and be no evaluation split
        if asked in evaluation_splits(cfg, dcfg) or asked == dcfg.split:
            raise MedalignError(
                f"config trainer.validation_split={asked}: that is the "
                f"{'training' if asked == dcfg.split else 'evaluation'} split of dataset "
                f"{dcfg.name!r}, so it cannot also validate training; use "
                "trainer.validation_split=fraction (a held-out share of the training rows)"
            )
        return asked
    split = get_task(dcfg).dev_split
    if split is None or split == dcfg.split or split in evaluation_splits(cfg, dcfg):
        return None
    if not _split_exists(cfg, dcfg, split):
        log.info("validation: %s has no %r split here; holding out a fraction", dcfg.name, split)
        return None
    return split


def _split_exists(cfg: RunConfig, dcfg: DatasetConfig, split: str) -> bool:
    if dcfg.hub_id:  # a hub copy: whether the split is there is known by loading it
        try:
            load_records(dcfg, cfg.data_root, split=split)
        except MedalignError:
            return False
        return True
    moved = dataclasses.replace(dcfg, split=split)
    try:
        return resolve_path(moved, cfg.data_root, get_task(moved)).exists()
    except MedalignError:  # "file not found"
        return False


def _fraction(
    records: list[QARecord], fraction: float, seed: int, dcfg: DatasetConfig
) -> tuple[list[QARecord], list[QARecord]]:
    """(held out, training): a seeded share of the distinct rows; every copy of a held-out
    row leaves the training rows."""
    distinct = list({id(r): r for r in records}.values())
    if len(distinct) < 2:
        raise MedalignError(
            f"trainer.eval_steps: dataset {dcfg.name!r} has {len(distinct)} training row(s); "
            "holding out a validation share needs at least 2 (or a dev split: "
            "trainer.validation_split)"
        )
    n = min(max(1, round(fraction * len(distinct))), len(distinct) - 1)
    held = random.Random(seed).sample(distinct, n)
    held_ids = {id(r) for r in held}
    return held, [r for r in records if id(r) not in held_ids]
