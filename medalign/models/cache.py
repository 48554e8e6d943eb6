"""Cache entries of what medalign builds once and then only reads: the tiny model, the
random-weight models, the world's data root and the world model.

    folder = build_into_cache(cache_root() / "models" / "tiny-<digest>", "tokenizer.json", build)

An entry is built in a staging folder beside its place and renamed into it, so a reader
never sees half a build and a killed build leaves no entry. Its last file, `ENTRY`,
records the size and sha256 of every other file; each load checks them, and an entry
that disagrees (a truncated `model.safetensors`, an edited config) is reported, removed
and rebuilt, never believed. Builders of one entry take turns on a file lock
(`.locks/<name>` beside it), so two processes that need the same entry at once build it
once, and the one holding the lock sweeps away the staging folders of builders that were
killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medalign.errors import MedalignError

# Each entry this process built, with how long it took: a curriculum stage whose time
# includes a build (the world model's pretraining, in the first stage) says so.
BUILDS: list[dict[str, float | str]] = []

log = logging.getLogger(__name__)

ENTRY = ".medalign-entry.json"  # written last: the files of a complete entry, with digests
FORMAT = 1
_SAMPLED = 512 << 20  # a file larger than this is checked by size, head and tail only
_VERIFIED: dict[str, float] = {}  # entries checked by this process (path -> ENTRY's mtime)


def file_digest(path: Path) -> str:
    """sha256 of `path`; for a file over 512 MiB, of its first and last MiB (with its
    size checked apart, that catches a cut or a partial copy without reading gigabytes
    on every load)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= _SAMPLED:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        else:
            h.update(f.read(1 << 20))
            f.seek(size - (1 << 20))
            h.update(f.read())
    return h.hexdigest()


def checksums(folder: Path, skip: tuple[str, ...] = (ENTRY,)) -> dict[str, list[int | str]]:
    """[size, digest] of every file under `folder` but those named in `skip`."""
    return {
        str(p.relative_to(folder)): [p.stat().st_size, file_digest(p)]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def entry_problem(target: Path, ready: str) -> str | None:
    """None when `target` is a complete entry whose files match its digests; "absent"
    when there is nothing (or only what a build never finished); else what is wrong."""
    record_path = target / ENTRY
    if not record_path.is_file():
        if not (target / ready).exists():
            return "absent" if not target.exists() else f"{ready} is missing"
        return _adopt(target)  # built before entries carried digests
    mtime = record_path.stat().st_mtime
    if _VERIFIED.get(str(target)) == mtime:
        return None
    try:
        files = json.loads(record_path.read_text())["files"]
        assert isinstance(files, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        return f"its {ENTRY} is unreadable ({exc})"
    for rel in sorted(files):  # a file added later is not the build's: not judged
        path = target / rel
        if not path.is_file():
            return f"{rel} is missing"
        found = [path.stat().st_size, file_digest(path)]
        if found != files[rel]:
            return f"{rel} has changed ({found[0]} bytes, built with {files[rel][0]})"
    _VERIFIED[str(target)] = mtime
    return None


def _adopt(target: Path) -> str | None:
    """An entry of an earlier medalign without ENTRY: believed (and given its digests)
    only when every safetensors file is as long as its header says, else rebuilt."""
    for path in sorted(target.rglob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return f"{path.relative_to(target)} {problem}"
    with contextlib.suppress(OSError):  # a read-only cache: checked again next time
        _write_record(target)
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"is {size} bytes, shorter than a header"
        (length,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(length))
        except ValueError:
            return "has an unreadable header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    return None if size == expected else f"is {size} bytes, its header says {expected}"


def _write_record(folder: Path) -> None:
    record = {"format": FORMAT, "files": checksums(folder)}
    (folder / ENTRY).write_text(json.dumps(record, indent=1, sort_keys=True))


def build_into_cache(target: Path, ready: str, build: Callable[[Path], Path]) -> str:
    """`target` when it is a complete, undamaged entry; else `build(staging)` makes the
    folder (returned by `build`, inside `staging`), its digests are recorded, and it is
    renamed into place. `ready` is a file every complete build holds (for entries built
    before digests were recorded)."""
    problem = entry_problem(target, ready)
    if problem is None:
        return str(target)
    with _build_lock(target):
        problem = entry_problem(target, ready)  # another process may have built it
        if problem is None:
            return str(target)
        if problem != "absent":
            log.warning("cache entry %s is damaged (%s): removed, rebuilding it", target, problem)
            _discard(target)
        _sweep_staging(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        started = time.perf_counter()
        try:
            built = build(staging)
            _write_record(built)
            built.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        BUILDS.append({"entry": target.name, "seconds": round(time.perf_counter() - started, 2)})
    return str(target)


@contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """An exclusive flock on `.locks/<name>` beside `target`: released by the kernel when
    its process dies, however it dies."""
    try:
        (target.parent / ".locks").mkdir(parents=True, exist_ok=True)
        handle = open(target.parent / ".locks" / target.name, "a")  # noqa: SIM115
    except OSError as exc:
        raise MedalignError(
            f"cannot build {target.name} in the cache {target.parent}: {exc.strerror}; "
            "point MEDALIGN_CACHE at a writable folder"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is building %s: waiting for it", target)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _discard(target: Path) -> None:
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    target.rename(aside / "damaged")
    shutil.rmtree(aside, ignore_errors=True)


def _sweep_staging(target: Path) -> None:
    """Staging folders of this entry left by killed builders (the lock says none is live)."""
    for path in target.parent.glob(f".{target.name}-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
