"""Remembered loads: a training set read, validated and decontaminated once is not read
again while its files, its settings and the code that reads it are unchanged.

At 180k rows, reading the JSON, building the records, fingerprinting them and checking
every row against the evaluation sets takes seconds per run: paid again by every later
stage, resume and sweep job over the same data. The load is keyed by the bytes of every
file it read (the training files and the evaluation files decontamination compared
against, each Task's `source_files`), every dataset setting, `data_root`, and the source
of the code that reads and decontaminates. Its entry holds what the manifest records about
the load (`TrainingData.summary()`: rows, the records' fingerprint, skipped and
decontaminated counts). With the tokenized-dataset entry of that fingerprint
(`token_cache`), an SFT stage starts training without reading a row (data/prepare.py).

Entries are small JSON files in `<preprocess.cache_dir>/.loads/`, written to a temporary
file and renamed into place; `python -m medalign.data.token_cache clear` removes them with
the tokenized datasets. Hub datasets are never remembered: their bytes are not local.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.data.token_cache import LOADS as FOLDER
from medalign.data.token_cache import cache_dir, hash_sources
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
FORMAT = 2  # bump when the summary's layout or the loading changes meaning
READ_CODE = (
    "tasks",
    "data/loading.py",
    "data/decontaminate.py",
    "data/records.py",
    "data/files.py",
)


def load_key(cfg: RunConfig) -> str | None:
    """The key of the training set `cfg` loads, or None when it cannot be remembered
    (a hub dataset; validation rows held out of it)."""
    from medalign.data.loading import (
        decontamination_configs,
        get_task,
        resolve_path,
        split_config,
        training_configs,
    )

    if cfg.trainer.eval_steps is not None:  # hold_out() changes the rows after loading
        return None
    h = hashlib.sha256(json.dumps([FORMAT, cfg.data_root, cfg.dataset.name]).encode())
    reads = [(c, c.split, w) for c, w in training_configs(cfg)]
    reads += [(c, c.eval_split, None) for c in decontamination_configs(cfg)]
    for config, split, weight in reads:
        if config.hub_id:
            return None
        config = split_config(config, split)
        h.update(json.dumps([dataclasses.asdict(config), weight], default=str).encode())
        try:
            task = get_task(config)
            files = task.source_files(resolve_path(config, cfg.data_root, task))
        except MedalignError as exc:  # e.g. no such split: the load records it unchecked
            h.update(str(exc).encode())
            continue
        for path in files:
            h.update(str(path).encode())
            h.update(_file_digest(path))
    hash_sources(h, READ_CODE, pattern="*")  # tasks/assets too (the PubMedQA test PMIDs)
    return h.hexdigest()[:24]


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.digest()


def recall(root: Path, key: str) -> dict[str, Any] | None:
    """The summary remembered under `key`, or None (absent or unreadable)."""
    path = root / FOLDER / f"{key}.json"
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("remembered load %s is unreadable (%s): reading the data", path, exc)
        return None
    if entry.get("key") != key or not isinstance(entry.get("summary"), dict):
        log.warning("remembered load %s is not for key %s: reading the data", path, key)
        return None
    if entry.get("checksum") != _checksum(entry["summary"]):
        log.warning(
            "remembered load %s fails its checksum (edited or damaged): removed, reading the "
            "data again",
            path,
        )
        path.unlink(missing_ok=True)
        return None
    return entry["summary"]


def _checksum(summary: dict[str, Any]) -> str:
    """sha256 of the summary as written: any edit of a remembered count shows."""
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def remember(root: Path, key: str, summary: dict[str, Any]) -> None:
    """Write `summary` under `key`: a temporary file renamed into place."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "summary": summary, "checksum": _checksum(summary)}, f)
        os.replace(tmp, folder / f"{key}.json")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def recall_training(cfg: RunConfig) -> tuple[str | None, dict[str, Any] | None]:
    """(the load key of `cfg`'s training set, its remembered summary or None); the key is
    None when the load cannot be remembered (or `preprocess.cache=false`)."""
    if not cfg.preprocess.cache:
        return None, None
    key = load_key(cfg)
    if key is None:
        return None, None
    summary = recall(cache_dir(cfg.preprocess.cache_dir), key)
    if summary is not None:
        log.info(
            "training data unchanged since it was last read (load %s): %d rows from %s",
            key,
            summary.get("rows", 0),
            summary.get("source"),
        )
        if summary.get("decontaminated"):
            log.warning(
                "%d training rows overlap evaluation sets and are left out (as when read): %s",
                summary["decontaminated"],
                summary.get("decontaminated_by"),
            )
    return key, summary


def points_to(prepared: Any) -> dict[str, Any]:
    """What a remembered load records of the tokenized entry it leads to: checked on the
    next hit (`agrees`), so that the two caches can never tell different stories."""
    stats = getattr(prepared, "stats", None)
    return {"tokenized": {"key": prepared.cache_key, "rows": stats.rows}} if stats else {}


def as_recorded(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as the manifest records it (without the cache's own cross-check)."""
    return {k: v for k, v in summary.items() if k != "tokenized"}


def agrees(summary: dict[str, Any], prepared: Any) -> bool:
    """The remembered load and the tokenized entry it led to agree (same entry, same row
    count); a mismatch is warned and the data is read again."""
    expected = summary.get("tokenized")
    stats = getattr(prepared, "stats", None)
    if not expected or stats is None:
        return True
    if expected.get("key") == prepared.cache_key and expected.get("rows") == stats.rows:
        return True
    log.warning(
        "the remembered load says %s rows in tokenized entry %s, the entry holds %s rows in "
        "%s: reading the data again",
        expected.get("rows"),
        expected.get("key"),
        stats.rows,
        prepared.cache_key,
    )
    return False


def remember_training(cfg: RunConfig, key: str | None, summary: dict[str, Any]) -> None:
    if key is None or not cfg.preprocess.cache:
        return
    import errno

    try:
        remember(cache_dir(cfg.preprocess.cache_dir), key, summary)
    except OSError as exc:  # a read-only cache: said once by the tokenized cache's store
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
