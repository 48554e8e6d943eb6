"""`dataset.*` -> normalized records, from a local file or folder, the examples, or the hub.

Loaders are registered per format (`@register("loader", "medqa")`) and know only their
format. This module decides where the rows come from (`dataset.path`, else
`<data_root>/<name>`, else medalign's examples), recognizes a file of another dataset
given by mistake, applies `limit`/`seed`, builds the training mix and removes rows that
overlap an evaluation set.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from medalign.config import DatasetConfig, merge_group
from medalign.data.decontaminate import EvalIndex, split_contaminated
from medalign.data.files import sniff_format
from medalign.data.records import BadRows, LoadedData, QARecord
from medalign.errors import MedalignError
from medalign.registry import get

log = logging.getLogger(__name__)
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
CONF_DATASETS = Path(__file__).resolve().parent.parent.parent / "conf" / "dataset"


class Loader(Protocol):
    def split_file(self, folder: Path, cfg: DatasetConfig) -> Path: ...

    def read(self, path: Path, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]: ...

    def read_hub(self, rows: Any, cfg: DatasetConfig, bad: BadRows) -> list[QARecord]: ...


def load_records(
    cfg: DatasetConfig, data_root: str | None = None, split: str | None = None
) -> LoadedData:
    """Read, validate and normalize the rows `cfg` names (for `split`, default cfg.split)."""
    if split is not None and split != cfg.split:
        cfg = merge_group("dataset", DatasetConfig, {**vars(cfg), "split": split})
    loader: Loader = get("loader", cfg.format)
    bad: BadRows
    if cfg.hub_id:
        source = f"hub:{cfg.hub_id}" + (f"/{cfg.hub_config}" if cfg.hub_config else "")
        bad = BadRows(source, cfg.on_bad_row)
        records = loader.read_hub(_load_hub(cfg), cfg, bad)
    else:
        path = resolve_path(cfg, data_root, loader)
        source = str(path)
        found = sniff_format(path)
        if found is not None and found != cfg.format:
            raise MedalignError(
                f"{path}: this is a {found} file, not {cfg.format} (dataset {cfg.name!r}); "
                f"use dataset={found} or point dataset.path at a {cfg.format} file"
            )
        bad = BadRows(source, cfg.on_bad_row)
        records = loader.read(path, cfg, bad)
    records = _subset(records, cfg)
    if not records:
        raise MedalignError(f"dataset {cfg.name!r}: no usable rows in {source} ({cfg.split})")
    skipped = dict(bad.counts)
    if skipped:
        log.warning("%s: skipped %d bad rows: %s", source, sum(skipped.values()), skipped)
    log.info("%s/%s: %d records from %s", cfg.name, cfg.split, len(records), source)
    return LoadedData(records=records, source=source, skipped=skipped, config=cfg)


def resolve_path(cfg: DatasetConfig, data_root: str | None, loader: Loader) -> Path:
    """The file to read: dataset.path (a file, or a folder in the official layout),
    else <data_root>/<name>, else the bundled example folder."""
    if cfg.path:
        base = Path(cfg.path).expanduser()
    elif data_root:
        base = Path(data_root).expanduser() / cfg.name
    else:
        base = EXAMPLES_DIR / cfg.name
    if base.is_dir():
        base = loader.split_file(base, cfg)
    if not base.exists():
        raise MedalignError(
            f"dataset {cfg.name!r}: file not found: {base} (dataset.path, split {cfg.split!r})"
        )
    return base


def dataset_config(name: str, current: DatasetConfig) -> DatasetConfig:
    """The config of dataset `name`: the live one if it is the current, else its YAML
    defaults with the current run's row policy."""
    if name == current.name:
        return current
    path = CONF_DATASETS / f"{name}.yaml"
    if name.startswith("_") or not path.is_file():
        known = ", ".join(sorted(p.stem for p in CONF_DATASETS.glob("[!_]*.yaml")))
        raise MedalignError(
            f"dataset {name!r} (in dataset.mix or dataset.decontaminate_against) has no "
            f"conf/dataset/{name}.yaml; known datasets: {known}"
        )
    from omegaconf import OmegaConf

    own = OmegaConf.load(path)
    own.pop("defaults", None)
    merged = OmegaConf.merge(OmegaConf.load(CONF_DATASETS / "_base.yaml"), own)
    values = OmegaConf.to_container(merged)
    assert isinstance(values, dict)
    values.update(on_bad_row=current.on_bad_row, rationale=current.rationale, seed=current.seed)
    return merge_group(f"dataset/{name}", DatasetConfig, values)


@dataclass
class TrainingData:
    """What an SFT stage trains on, and what the manifest records about it."""

    parts: list[LoadedData]
    decontaminated: dict[str, int] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)  # eval set -> why not checked

    @property
    def records(self) -> list[QARecord]:
        return [r for part in self.parts for r in part.records]

    def summary(self) -> dict[str, Any]:
        import hashlib

        fingerprint = hashlib.sha256("".join(p.fingerprint for p in self.parts).encode())
        skipped: Counter[str] = Counter()
        for part in self.parts:
            skipped.update(part.skipped)
        return {
            "source": [p.source for p in self.parts]
            if len(self.parts) > 1
            else self.parts[0].source,
            "fingerprint": fingerprint.hexdigest()[:16],
            "rows": len(self.records),
            "rows_by_dataset": {p.config.name: len(p.records) for p in self.parts},
            "skipped": dict(skipped),
            "decontaminated": sum(self.decontaminated.values()),
            "decontaminated_by": self.decontaminated,
            "decontamination_unchecked": self.unchecked,
        }


def load_training_data(cfg: DatasetConfig, data_root: str | None) -> TrainingData:
    """The current dataset or the `dataset.mix`, with evaluation overlaps removed."""
    names = dict(cfg.mix or {}) or {cfg.name: 1.0}
    parts = []
    for name, weight in names.items():
        part = load_records(dataset_config(name, cfg), data_root)
        parts.append(_weighted(part, weight, cfg.seed or 0))
    counts: Counter[str] = Counter()
    unchecked: dict[str, str] = {}
    if cfg.decontaminate_against:
        index = EvalIndex.from_config(cfg)
        for name in cfg.decontaminate_against:
            eval_cfg = dataclasses.replace(dataset_config(name, cfg), limit=None)
            try:
                eval_data = load_records(eval_cfg, data_root, split=eval_cfg.eval_split)
            except MedalignError as exc:  # no such split here: nothing to check against
                log.warning("not decontaminating against %s: %s", name, exc)
                unchecked[name] = str(exc)
                continue
            index.add(name, eval_data.records)
        for part in parts:
            clean, found = split_contaminated(part.records, index)
            counts.update(found)
            if cfg.decontaminate:
                part.records = clean
        if counts:
            action = "dropped" if cfg.decontaminate else "kept (dataset.decontaminate=false)"
            log.warning(
                "%d training rows overlap evaluation sets, %s: %s",
                sum(counts.values()),
                action,
                dict(counts),
            )
    return TrainingData(parts=parts, decontaminated=dict(counts), unchecked=unchecked)


def _weighted(part: LoadedData, weight: float, seed: int) -> LoadedData:
    """Weight w keeps round(w * n) rows: a random subset below 1, repeats above."""
    if weight <= 0:
        raise MedalignError(f"dataset.mix: weight of {part.config.name!r} must be > 0")
    n = round(weight * len(part.records))
    whole, rest = divmod(n, len(part.records))
    extra = random.Random(seed).sample(part.records, rest)
    part.records = part.records * whole + extra
    return part


def _subset(records: list[QARecord], cfg: DatasetConfig) -> list[QARecord]:
    if cfg.limit is None or cfg.limit >= len(records):
        return records
    if cfg.seed is None:
        return records[: cfg.limit]
    return random.Random(cfg.seed).sample(records, cfg.limit)


def _load_hub(cfg: DatasetConfig) -> Any:
    import datasets

    try:
        return datasets.load_dataset(cfg.hub_id, cfg.hub_config, split=cfg.split)
    except Exception as exc:  # the hub raises many types; all mean "not reachable/found"
        raise MedalignError(
            f"dataset {cfg.name!r}: cannot load hub dataset {cfg.hub_id!r} "
            f"(config {cfg.hub_config!r}, split {cfg.split!r}): {exc}"
        ) from None
