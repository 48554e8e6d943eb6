"""`dataset.*` -> normalized records, from a local file or folder, the examples, or the hub.

Each format's Task (medalign/tasks/) knows how to read its files (`get_task` finds it by
name in the registry: data/ sits below tasks/, medalign/layers.py); this module decides
where the rows come from (`dataset.path`, else `<data_root>/<name>`, else medalign's
examples), recognizes a file of another dataset given by mistake, applies
`limit`/`seed`, builds the training mix and removes rows that
overlap an evaluation set.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medalign.config import DatasetConfig, RunConfig, merge_group
from medalign.data.decontaminate import EvalIndex, decontaminate
from medalign.data.files import read_head
from medalign.data.hints import (
    expected_layout,
    refuse_missing_rationales,
    warn_fewer_rows_than_a_batch,
    warn_suspect_training_file,
)
from medalign.data.records import BadRows, LoadedData, QARecord
from medalign.errors import MedalignError
from medalign.registry import get, names

log = logging.getLogger(__name__)
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


# a row's question, context, options and rationale together: 100x a long MedQA vignette or
# PubMedQA abstract; longer rows are bad rows (README, "Bad input")
MAX_RECORD_CHARS = 200_000


def load_records(
    cfg: DatasetConfig,
    data_root: str | None = None,
    split: str | None = None,
    key: str = "dataset",
) -> LoadedData:
    """Read, validate and normalize the rows `cfg` names (for `split`, default cfg.split).
    `key`: where `cfg` sits in the run's config (`datasets.<name>` for an evaluation
    set), so an error names the override that changes this read (Task.key)."""
    cfg = split_config(cfg, split)
    task = get_task(cfg, key)
    bad: BadRows
    if cfg.hub_id:
        source = f"hub:{cfg.hub_id}" + (f"/{cfg.hub_config}" if cfg.hub_config else "")
        bad = BadRows(source, cfg.on_bad_row)
        records = task.read_hub(_load_hub(cfg, task.hub_split()), bad)
    else:
        path = resolve_path(cfg, data_root, task)
        source = str(path)
        refuse_other_layout(path, task, cfg)
        bad = BadRows(source, cfg.on_bad_row)
        records = task.read(path, bad)
    records = _subset(refuse_oversized(records, bad), cfg)
    if not records:
        raise MedalignError(f"dataset {cfg.name!r}: no usable rows in {source} ({cfg.split})")
    skipped = dict(bad.counts)
    if skipped:
        log.warning("%s: skipped %d bad rows: %s", source, sum(skipped.values()), skipped)
    log.info("%s/%s: %d records from %s", cfg.name, cfg.split, len(records), source)
    return LoadedData(records=records, source=source, skipped=skipped, config=cfg)


def refuse_other_layout(path: Path, task: Any, cfg: DatasetConfig) -> None:
    """A file in another registered Task's layout, given to a Task with a layout of its
    own that does not recognize it, is refused before anything reads it (each Task
    declares its layout: `Task.recognizes`)."""
    head = read_head(path)
    if head is None or task.recognizes(head) is not False:
        return
    found = [name for name in names("task") if get("task", name).recognizes(head)]
    if found:
        raise MedalignError(
            f"{path}: this is a {found[0]} file, not {cfg.format} (dataset {cfg.name!r}); "
            f"use a dataset whose format is {found[0]} (the built-in one: dataset={found[0]}) "
            f"or point dataset.path at a {cfg.format} file"
        )


def get_task(cfg: DatasetConfig, key: str = "dataset") -> Any:
    """The Task (medalign/tasks/) for `cfg.format`, bound to `cfg`: a registered name or a
    dotted path to a `medalign.tasks.base.Task` subclass (the registry checks which).
    `key`: where `cfg` sits in the run's config, for the overrides its messages name."""
    return get("task", cfg.format)(cfg, key)


def resolve_path(cfg: DatasetConfig, data_root: str | None, task: Any) -> Path:
    """The file to read: dataset.path (a file, or a folder in the official layout),
    else <data_root>/<name>, else the bundled example folder."""
    if cfg.path:
        base = Path(cfg.path).expanduser()
    elif data_root:
        base = Path(data_root).expanduser() / cfg.name
    else:
        base = EXAMPLES_DIR / cfg.name
    folder = base if base.is_dir() or not cfg.path else None
    if folder is not None:  # a folder in the official layout (data_root: maybe missing)
        base = task.split_file(base)
    if not base.exists():
        raise MedalignError(
            f"dataset {cfg.name!r}: file not found: {base} ({task.key}.path, split {cfg.split!r})"
            + (expected_layout(cfg, task, folder) if folder is not None else "")
        )
    if not base.is_file() and not base.is_dir():  # a device or a FIFO: read forever
        raise MedalignError(
            f"{base}: not a regular file ({_file_kind(base)}); dataset.path must name a data "
            "file or a folder in the dataset's official layout"
        )
    return base


def _file_kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


def refuse_oversized(records: list[QARecord], bad: BadRows) -> list[QARecord]:
    """Rows longer than MAX_RECORD_CHARS are bad rows (an error, or skipped and counted):
    a 50 MB question would otherwise tokenize and decontaminate for minutes in silence."""
    kept = []
    for record in records:
        sizes = {
            "question": len(record.question),
            "context": sum(len(c) for c in record.context),
            "options": sum(len(v) for v in (record.options or {}).values()),
            "rationale": len(record.rationale or ""),
        }
        total = sum(sizes.values())
        if total > MAX_RECORD_CHARS:
            field = max(sizes, key=sizes.__getitem__)
            bad.reject(
                record.meta.get("row") or record.id,
                field,
                f"{total:,} characters, longer than the {MAX_RECORD_CHARS:,} a row may hold",
            )
            continue
        kept.append(record)
    return kept


def catalogue_config(cfg: RunConfig, name: str, key: str) -> DatasetConfig:
    """`datasets.<name>` of the composed config (the dataset catalogue), or a clear error."""
    if name in cfg.datasets:
        return cfg.datasets[name]
    known = ", ".join(sorted(cfg.datasets))
    raise MedalignError(
        f"{key}: unknown dataset {name!r}. The catalogue (datasets.*) has: {known}. "
        f"Add a dataset with its YAML in conf/dataset/ (or a folder on $MEDALIGN_CONFIG_PATH)"
    )


def eval_dataset_config(cfg: RunConfig, name: str) -> DatasetConfig:
    """The config evaluation uses for `name`: its catalogue entry with eval.splits/limits.

    When the training dataset is the same dataset read from a folder in the official
    layout (or the hub), evaluation reads the evaluation split from that same source; a
    training *file* is only the training split, and the catalogue says where the
    evaluation rows come from (logged)."""
    dcfg = catalogue_config(cfg, name, "eval.datasets")
    train = cfg.dataset
    if name == train.name and not (dcfg.path or dcfg.hub_id):
        if train.hub_id:
            dcfg = dataclasses.replace(dcfg, hub_id=train.hub_id, hub_config=train.hub_config)
        elif train.path and Path(train.path).expanduser().is_dir():
            dcfg = dataclasses.replace(dcfg, path=train.path)
    split = (cfg.eval.splits or {}).get(name, dcfg.eval_split)
    limit = (cfg.eval.limits or {}).get(name, cfg.eval.limit)
    return dataclasses.replace(
        dcfg, eval_split=split, limit=limit if limit is not None else dcfg.limit
    )


def check_eval_sets(cfg: RunConfig) -> None:
    """Each set in eval.datasets, as evaluation will read it (its catalogue entry, eval
    split, key `datasets.<name>`), handed to its Task's start-up check
    (Task.check_eval_data): a set evaluation would refuse then fails before training,
    naming the override evaluation reads. The caller decides whether the run evaluates."""
    for name in cfg.eval.datasets:
        dcfg = eval_dataset_config(cfg, name)
        dcfg = split_config(dcfg, dcfg.eval_split)
        task = get_task(dcfg, f"datasets.{name}")
        if not task.eval_modes:  # instructions, a corpus: refused now, not once weights load
            task.resolve_mode("auto")
        task.check_eval_data(cfg.data_root)


@dataclass
class TrainingData:
    """What an SFT stage trains on, and what the manifest records about it."""

    parts: list[LoadedData]
    decontaminated: dict[str, int] = field(default_factory=dict)
    unchecked: dict[str, str] = field(default_factory=dict)  # eval set -> why not checked
    overlaps: list[dict[str, Any]] = field(default_factory=list)  # each overlapping row, why

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
            # each overlapping row: id, exact/near, eval set and row, overlap fraction
            "decontaminated_rows": self.overlaps[:200],
            "decontamination_unchecked": self.unchecked,
        }


def training_configs(cfg: RunConfig) -> list[tuple[DatasetConfig, float]]:
    """(config, mix weight) of each dataset the training set is made of."""
    train = cfg.dataset
    names = dict(train.mix or {}) or {train.name: 1.0}
    out = []
    for name, weight in names.items():
        part_cfg = train if name == train.name else catalogue_config(cfg, name, "dataset.mix")
        part_cfg = dataclasses.replace(part_cfg, on_bad_row=train.on_bad_row, seed=train.seed)
        out.append((part_cfg, weight))
    return out


def decontamination_configs(cfg: RunConfig) -> list[DatasetConfig]:
    """The evaluation sets the training rows are checked against, whole: those
    `dataset.decontaminate_against` names and, always, the evaluation split of every
    evaluable dataset trained on (a dataset of your own is never trained on its own test
    questions, whatever the list says)."""
    names = list(cfg.dataset.decontaminate_against or [])
    for part_cfg, _ in training_configs(cfg):
        evaluable = get("task", part_cfg.format).eval_modes
        if evaluable and part_cfg.name in cfg.datasets and part_cfg.name not in names:
            names.append(part_cfg.name)
    return [dataclasses.replace(eval_dataset_config(cfg, name), limit=None) for name in names]


def refuse_one_file_for_both(cfg: RunConfig, part: LoadedData) -> None:
    """A dataset whose training rows and evaluation rows come from one and the same file
    (a single-file `path`: the split cannot choose) is refused: every evaluation question
    would also be a training question. A layout whose splits live inside one file
    (PubMedQA's ori_pqal.json, split by its test ids) is not: its Task splits it."""
    name = part.config.name
    if name not in cfg.datasets or part.source.startswith("hub:"):
        return
    if not get("task", part.config.format).eval_modes:
        return  # never evaluated (instructions, a corpus): no evaluation split to leak into
    catalogue = eval_dataset_config(cfg, name)
    eval_cfg = split_config(catalogue, catalogue.eval_split)
    if eval_cfg.split == part.config.split or eval_cfg.hub_id:
        return
    layout = Path("<layout>")  # which file each split is in the official layout
    if get_task(eval_cfg).split_file(layout) == get_task(part.config).split_file(layout):
        return
    try:
        source = resolve_path(eval_cfg, cfg.data_root, get_task(eval_cfg))
    except MedalignError:
        return  # no evaluation split there: nothing it could leak into
    if source.resolve() == Path(part.source).resolve():
        raise MedalignError(
            f"dataset {name!r}: {source} is one file, read for training (split "
            f"{part.config.split!r}) and for evaluation (split {eval_cfg.split!r}): every "
            f"evaluation question would be a training question. Point path at a folder "
            f"holding one file per split, or give the evaluation file its own path "
            f"(+datasets.{name}.path=...)"
        )


def split_config(cfg: DatasetConfig, split: str | None) -> DatasetConfig:
    """`cfg` reading `split` (default: its own)."""
    if split is None or split == cfg.split:
        return cfg
    return merge_group("dataset", DatasetConfig, {**vars(cfg), "split": split})


def load_training_data(cfg: RunConfig) -> TrainingData:
    """The training dataset or its `dataset.mix`, with evaluation overlaps removed."""
    train = cfg.dataset
    parts = []
    for part_cfg, weight in training_configs(cfg):
        key = "dataset" if part_cfg.name == train.name else f"datasets.{part_cfg.name}"
        part = load_records(part_cfg, cfg.data_root, key=key)  # its settings' home
        parts.append(_weighted(part, weight, train.seed or 0))
    counts: Counter[str] = Counter()
    overlaps: list[dict[str, Any]] = []
    unchecked: dict[str, str] = {}
    for part in parts:
        get_task(part.config).check_training_rows(part)  # e.g. XSTest rows with no answer
        refuse_one_file_for_both(cfg, part)
        warn_suspect_training_file(part)
        refuse_missing_rationales(part, get_task(part.config).rationale_source)
    if against := decontamination_configs(cfg):
        index = EvalIndex.from_config(train)
        for eval_cfg in against:
            name = eval_cfg.name
            try:
                eval_data = load_records(
                    eval_cfg, cfg.data_root, split=eval_cfg.eval_split, key=f"datasets.{name}"
                )
            except MedalignError as exc:  # no such split here: nothing to check against
                log.warning("not decontaminating against %s: %s", name, exc)
                unchecked[name] = str(exc)
                continue
            log.info(
                "decontaminating against %s/%s: %s", name, eval_cfg.eval_split, eval_data.source
            )
            index.add(name, eval_data.records)
        for part in parts:
            result = decontaminate(part.records, index)
            counts.update(f"{d.kind}:{d.eval_set}" for d in result.dropped)
            overlaps += [d.as_dict() for d in result.dropped]
            if train.decontaminate:
                part.records = result.clean
        if counts:
            action = "dropped" if train.decontaminate else "kept (dataset.decontaminate=false)"
            log.warning(
                "%d training rows overlap evaluation sets, %s: %s",
                sum(counts.values()),
                action,
                dict(counts),
            )
    for part in parts:
        if not part.records:
            raise MedalignError(
                f"dataset {part.config.name!r}: no training rows left from {part.source} "
                f"after decontamination ({dict(counts)}); see dataset.decontaminate"
            )
    warn_fewer_rows_than_a_batch(cfg, parts)
    return TrainingData(
        parts=parts, decontaminated=dict(counts), unchecked=unchecked, overlaps=overlaps
    )


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


def _load_hub(cfg: DatasetConfig, split: str) -> Any:
    import datasets

    try:
        return datasets.load_dataset(cfg.hub_id, cfg.hub_config, split=split)
    except Exception as exc:  # the hub raises many types; all mean "not reachable/found"
        raise MedalignError(
            f"dataset {cfg.name!r}: cannot load hub dataset {cfg.hub_id!r} "
            f"(config {cfg.hub_config!r}, split {cfg.split!r}): {exc}"
        ) from None
