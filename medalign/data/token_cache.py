"""The tokenized-dataset cache: tokenize a training set once, reuse it in every later stage,
resume and sweep job that asks for the same tokens.

    python -m medalign stage=medmcqa                       # first run: tokenizes, writes the entry
    python -m medalign stage=medmcqa lora.r=16             # "tokenized cache hit <key>"
    python -m medalign.data.token_cache list               # entries, sizes
    python -m medalign.data.token_cache clear              # remove them all (or: rm -rf the dir)

An entry is keyed by everything that changes the tokens: the fingerprint of the
normalized records (so the data, its subset/mix, decontamination), every dataset setting
(prompt/answer templates, rationale, options ...), the source of the code that renders
and tokenizes them (medalign/tasks, formatting, tokenize), the tokenizer (its serialized
vocabulary, merges, normalizer and post-processor, special tokens, class), the chat
template, max_length, truncation mode, completion-only loss, packing and its strategy,
and the library versions that render and tokenize. It lives in `<cache dir>/<key>/`
(`preprocess.cache_dir`, default `~/.cache/medalign/tokenized/`, beside the tiny-model
cache): Arrow files written by
`Dataset.save_to_disk` plus `entry.json` (the key, what went into it, the statistics and a
sha256 of every file). It is written into a temporary directory and renamed into place,
so a killed writer leaves no entry (its `.tmp-*` folder is swept by the next writer); an
entry whose key or checksums do not match is reported, removed and rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FORMAT = 1  # bump when the tokenization or the entry layout changes
ENTRY = "entry.json"


LOADS = ".loads"  # the remembered loads' folder in the cache (data/load_cache.py)


def default_dir() -> Path:
    from medalign.models.builders import cache_root

    return cache_root() / "tokenized"


def cache_dir(configured: str | None) -> Path:
    return Path(configured).expanduser() if configured else default_dir()


RENDER_CODE = ("tasks", "data/formatting.py", "data/tokenize.py", "data/records.py")


def records_fingerprint(parts: list[Any]) -> str:
    """What TrainingData.summary() records as `fingerprint` (sha256 of the records)."""
    joined = "".join(part.fingerprint for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def data_digest(fingerprint: str, configs: list[Any], shuffle_seed: int | None) -> str:
    """The training rows as they will be rendered: records, dataset settings, render code.
    (Cheaper than rendering them: a cache hit never renders a row.)"""
    import dataclasses

    h = hashlib.sha256(fingerprint.encode())
    for config in configs:
        h.update(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())
    h.update(str(shuffle_seed).encode())
    hash_sources(h, RENDER_CODE)
    return h.hexdigest()


def hash_sources(h: Any, names: tuple[str, ...], pattern: str = "*.py") -> None:
    """Feed `h` the bytes of medalign's own files `names` (files, or folders searched for
    `pattern`): a cache keyed by them misses whenever that code changes."""
    import medalign

    package = Path(medalign.__file__).parent
    for name in names:
        path = package / name
        for source in sorted(path.rglob(pattern)) if path.is_dir() else [path]:
            if source.is_file() and source.suffix != ".pyc":
                h.update(source.read_bytes())


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of what makes a tokenizer tokenize the way it does."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(str(tokenizer.chat_template).encode())
    h.update(str(getattr(tokenizer, "padding_side", "")).encode())
    return h.hexdigest()


def cache_key(data: str, tokenizer: Any, args: Any) -> tuple[str, dict[str, Any]]:
    """(key, the parts it was made of) for `data` (its `data_digest`) tokenized by
    `tokenizer` under `args` (the run's SFTConfig)."""
    import datasets
    import tokenizers
    import transformers
    import trl

    parts = {
        "format": FORMAT,
        "rows": data,  # the data digest (named "rows" in entries already written)
        "tokenizer": tokenizer_digest(tokenizer),
        "max_length": args.max_length,
        "truncation_mode": args.truncation_mode,
        "completion_only_loss": args.completion_only_loss,
        "packing": bool(args.packing),
        "packing_strategy": args.packing_strategy if args.packing else None,
        "shuffle": [args.shuffle_dataset, args.seed] if args.packing else None,
        "versions": [
            transformers.__version__,
            tokenizers.__version__,
            datasets.__version__,
            trl.__version__ if args.packing else None,
        ],
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24], parts


def _checksums(folder: Path) -> dict[str, str]:
    from medalign.models.cache import file_digest

    return {
        str(path.relative_to(folder)): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ENTRY
    }


def load(root: Path | str, key: str) -> tuple[Any, dict[str, Any]] | None:
    """The entry `key` (dataset, its entry.json), or None. A damaged or foreign entry is
    logged, removed and treated as absent."""
    folder = Path(root) / key
    if not folder.is_dir():
        return None
    problem = _verify(folder, key)
    if problem:
        log.warning("tokenized cache entry %s is unusable (%s): removed, rebuilt", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    from datasets import load_from_disk

    meta = json.loads((folder / ENTRY).read_text())
    return load_from_disk(str(folder / "data")), meta


def _verify(folder: Path, key: str) -> str | None:
    try:
        meta = json.loads((folder / ENTRY).read_text())
    except (OSError, ValueError) as exc:
        return f"no readable {ENTRY}: {exc}"
    if meta.get("key") != key:
        return f"its key is {meta.get('key')!r}, not {key!r}"
    found = _checksums(folder)
    if found != meta.get("checksums"):
        bad = sorted(
            set(found) ^ set(meta.get("checksums", {}))
            | {k for k in found if meta.get("checksums", {}).get(k) not in (None, found[k])}
        )
        return f"checksum mismatch in {', '.join(bad[:3]) or 'its file list'}"
    return None


def store(root: Path | str, key: str, dataset: Any, meta: dict[str, Any]) -> Path:
    """Write `dataset` as entry `key`: into a temporary folder, checksummed, then renamed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    target = root / key
    try:
        dataset.save_to_disk(str(staging / "data"))
        record = {**meta, "key": key, "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
        record["checksums"] = _checksums(staging)
        (staging / ENTRY).write_text(json.dumps(record, indent=1))
        try:
            os.rename(staging, target)
        except OSError:  # another process wrote it first: keep theirs
            if not (target / ENTRY).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def store_if_writable(root: Path | str, key: str, dataset: Any, meta: dict[str, Any]) -> bool:
    """`store`, but a cache folder that cannot be written (read-only, no permission) is
    one warning naming it, and training goes on without the cache. Returns whether it
    stored. A full disk is not swallowed: the run stops with "disk full"."""
    import errno

    try:
        store(root, key, dataset, meta)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        log.warning(
            "preprocess.cache_dir %s cannot be written (%s): training without the cache; "
            "point preprocess.cache_dir at a writable folder, or set preprocess.cache=false",
            root,
            exc.strerror,
        )
        return False
    return True


def _sweep(root: Path, older_than_s: float = 6 * 3600) -> None:
    """Remove staging folders of writers that died (older than `older_than_s`)."""
    now = time.time()
    for path in root.glob(".tmp-*"):
        try:
            if _is_staging(path) and now - path.stat().st_mtime > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def _is_entry(path: Path) -> bool:
    """A folder this cache wrote: its entry.json names it and lists its checksums."""
    try:
        meta = json.loads((path / ENTRY).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("key") == path.name and "checksums" in meta


def _is_staging(path: Path) -> bool:
    """A `store` that never finished: `.tmp-<key>-*` holding only what `store` writes."""
    if not (path.is_dir() and path.name.startswith(".tmp-")):
        return False
    return all(child.name in ("data", ENTRY) for child in path.iterdir())


def entries(root: Path) -> list[tuple[str, int]]:
    """(key, bytes) of each entry."""
    out = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir() and _is_entry(p)):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        out.append((folder.name, size))
    return out


def clear(root: Path) -> int:
    """Remove what this cache wrote under `root` (tokenized entries, unfinished staging
    folders, remembered loads) and nothing else: a file or folder it cannot recognize as
    its own is left where it is. Returns the number of tokenized entries removed."""
    if not root.is_dir():
        return 0
    removed = 0
    for path in sorted(root.iterdir()):
        if _is_entry(path):
            shutil.rmtree(path)
            removed += 1
        elif _is_staging(path):
            shutil.rmtree(path)
    _forget_loads(root)
    return removed


def _forget_loads(root: Path) -> None:
    """Remove the remembered loads (data/load_cache.py) in `root`/.loads: JSON entries that
    name their own key, and temporary files of writes that died; nothing else."""
    folder = root / LOADS
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and (path.name.startswith(".tmp-") or _is_load_entry(path)):
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def _is_load_entry(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(entry, dict) and entry.get("key") == path.stem and "summary" in entry


def main(argv: list[str]) -> int:
    """`python -m medalign.data.token_cache list|clear [dir]`"""
    if not argv or argv[0] not in ("list", "clear"):
        print("usage: python -m medalign.data.token_cache list|clear [cache dir]")
        return 2
    root = cache_dir(argv[1] if len(argv) > 1 else None)
    named = len(argv) > 1  # the default folder may not exist yet: nothing to list or clear
    if (named or root.exists()) and not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        print(f"medalign.data.token_cache: error: {root} {problem}", file=sys.stderr)
        return 1
    if argv[0] == "clear":
        print(f"removed {clear(root)} tokenized dataset(s) from {root}")
        return 0
    found = entries(root)
    for key, size in found:
        print(f"{key}  {size / 1e6:9.1f} MB")
    print(f"{len(found)} entries in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
