"""The run directory: resolved config, manifest, and the promise never to clobber a run.

The manifest is written atomically (temp file, then rename), so a kill at any moment
leaves a readable one; a run counts as complete only when its status says "done". A
`running` manifest names its process (pid, host); `medalign.locks.holder(dir)` says
whether that process still lives. A full disk is one clear error ("disk full at
<path>"), leaves no temp file, and still gets the failure recorded: each run keeps a
small reserve file that is freed to write its last manifest.

Secrets never reach disk: keys named like a token/key/secret/password, `key=value`
overrides with such a key, values shaped like a Hugging Face token (`hf_...`) or a W&B
API key (40 hex digits), and the values of secret-named environment variables are
replaced by *** in every saved copy (config.yaml, `.hydra/*.yaml`, the manifest, W&B
config) and, through `RedactingFilter`, in the log.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from medalign import __version__
from medalign.errors import MedalignError

REDACTED = "***"
RESERVE_NAME = ".medalign.reserve"
RESERVE_BYTES = 64 * 1024  # room for the failure manifest when the disk is full
_SECRET_KEY = re.compile(
    r"(?i)(^|_)(api_?key|access_?key|secret|secret_?key|password|passwd|token|auth)$"
)
_SECRET_ENV = re.compile(r"(?i)(token|key|password|passwd|secret)")
_ID_KEY = re.compile(r"(?i)(commit|sha|revision|hash|digest)$")  # 40 hex there is an id
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{30,}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX40_WORD = re.compile(r"(?<![\w/.-])[0-9a-f]{40}(?![\w/.-])")
_OVERRIDE = re.compile(r"^(?P<key>[+~]{0,2}[\w.\-/@]+)=(?P<value>.+)$", re.S)
# `key=value` / `key: value` of a secret-named key; never medalign's own messages about
# such a key ("config logger.api_key: unknown key ..."), which name it but hold no value
_ASSIGNED = re.compile(
    r"(?i)(?<!config )(?<![\w.])"
    r"(?P<key>[\w.]*(?:api_?key|access_?key|secret|password|passwd|token))"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)(?P<value>[^\s'\",}\]]+)"
)


class DiskFull(MedalignError):
    """No space left where medalign had to write."""


def secret_values() -> list[str]:
    """Values of environment variables named like secrets (WANDB_API_KEY, HF_TOKEN, ...)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


def redact(obj: Any, secrets: list[str] | None = None, key: str = "") -> Any:
    """A copy of `obj` with secret-named keys, secret-named overrides and secret-shaped
    values replaced by ***."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) and obj[k] else redact(v, secrets, str(k))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v, secrets, key) for v in obj]
    if isinstance(obj, str):
        if _HEX40.fullmatch(obj) and not _ID_KEY.search(key):
            return REDACTED
        override = _OVERRIDE.match(obj)
        if override and _SECRET_KEY.search(override["key"].rsplit(".", 1)[-1]):
            return f"{override['key']}={REDACTED}"
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
        obj = _HF_TOKEN.sub(REDACTED, obj)
    return obj


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Free text (a log line, an error): secret values, token shapes, `key=value` pairs."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    text = _HF_TOKEN.sub(REDACTED, text)
    text = _HEX40_WORD.sub(REDACTED, text)
    return _ASSIGNED.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Redacts each record (message and traceback) before a handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


FILE_ONLY = {"file_only": True}  # `log.error(..., extra=FILE_ONLY)`: the log file only


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of `logger` (the root logger by default),
    and keep FILE_ONLY records off the console handlers: an error the CLI prints itself
    on stderr would otherwise reach the terminal twice."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
        console = not isinstance(handler, logging.FileHandler)
        if console and _not_file_only not in handler.filters:
            handler.addFilter(_not_file_only)


def redact_yaml_files(folder: Path) -> None:
    """Redact the YAML files Hydra saved (`.hydra/*.yaml`); untouched when clean."""
    from omegaconf import OmegaConf

    for path in sorted(Path(folder).glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        clean = redact(raw)
        if clean != raw:
            write_text_atomic(path, OmegaConf.to_yaml(OmegaConf.create(clean)))


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temp file and a rename: readers see the old or the new file. On
    failure the temp file is removed; no space left is a DiskFull naming `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"disk full at {path.parent} (writing {path.name})") from None
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (redacted) atomically: see `write_text_atomic`. A NaN metric (nothing to
    count) is written as null: strict JSON, readable by every tool."""
    write_text_atomic(path, json.dumps(_finite(redact(data)), indent=2, default=str) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def git_commit() -> str | None:
    """The medalign checkout's commit (with -dirty), or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if dirty else sha


class RunDir:
    """One stage run's directory and its manifest.json, locked while this process works
    in it (`close()` or process exit releases it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / "manifest.json"
        self.manifest: dict[str, Any] = {}
        self._lock: Any = None

    @classmethod
    def create(
        cls,
        path: Path,
        stage: str,
        config: dict[str, Any],
        reopen: bool = False,
        hydra_subdir: str | None = None,
    ) -> RunDir:
        """Claim `path` for a new run; refuse a directory that already holds one, unless
        `reopen` resumes an unfinished one (a finished run is never reopened), and a
        directory another live process works in. `hydra_subdir`: where Hydra saved this
        run's `.hydra` record, moved to `.hydra` once the run is accepted."""
        from medalign.locks import acquire

        check_claimable(path, reopen)  # before the lock: a refused run writes nothing
        lock = acquire(path)
        try:
            check_claimable(path, reopen)  # again, now that no one else can write it
            run = cls(path)
            run._lock = lock
            run._reserve()
            if hydra_subdir:
                adopt_hydra_record(path, hydra_subdir)
            owner = {"pid": os.getpid(), "host": socket.gethostname()}
            if reopen and run.manifest_path.exists():
                run.manifest = json.loads(run.manifest_path.read_text())
                run.stage.pop("error", None)
                run.update(status="running", resumed=_now(), **owner)
                return run
            write_text_atomic(path / "config.yaml", _to_yaml(redact(config)))
            run.manifest = {
                "kind": "stage",
                "medalign_version": __version__,
                "git_commit": git_commit(),
                "stages": [{"name": stage, "status": "running", "started": _now(), **owner}],
            }
            run.save()
            return run
        except BaseException:
            lock.release()
            (path / RESERVE_NAME).unlink(missing_ok=True)
            raise

    @property
    def stage(self) -> dict[str, Any]:
        return self.manifest["stages"][-1]

    def update(self, **fields: Any) -> None:
        """Merge `fields` into the stage entry and persist at once."""
        self.stage.update(fields)
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        self.update(status=status, finished=_now(), **({"error": error} if error else {}))

    def save(self) -> None:
        """Write the manifest; on a full disk, free the reserve and write it once more."""
        try:
            write_json_atomic(self.manifest_path, self.manifest)
        except DiskFull:
            reserve = self.path / RESERVE_NAME
            if not reserve.exists():
                raise
            reserve.unlink()
            write_json_atomic(self.manifest_path, self.manifest)

    def close(self) -> None:
        """Free the reserve and release the directory's lock."""
        (self.path / RESERVE_NAME).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _reserve(self) -> None:
        """A file of RESERVE_BYTES to delete when the disk is full and the failure must
        still be written (deleting it frees its blocks for the manifest)."""
        path = self.path / RESERVE_NAME
        if path.is_file() and path.stat().st_size >= RESERVE_BYTES:
            return
        write_text_atomic(path, "\0" * RESERVE_BYTES)


def failure_status(exc: BaseException) -> str:
    """The manifest status of a run that ended with `exc`: Ctrl-C is not a failure."""
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"


def check_claimable(path: Path, reopen: bool = False) -> None:
    """Raise unless `path` may be claimed: empty or new, or (with `reopen`) an unfinished
    run. Reads only: called before Hydra or medalign writes anything there."""
    manifest_path = path / "manifest.json"
    if reopen and manifest_path.exists():
        try:
            stages = json.loads(manifest_path.read_text()).get("stages") or [{}]
        except (OSError, ValueError):
            raise MedalignError(f"{manifest_path}: unreadable manifest; not resuming") from None
        if stages[-1].get("status") == "done":
            raise MedalignError(f"{path} is a finished run; it is never reopened")
        return
    if manifest_path.exists() or (path / "adapter").exists():
        raise MedalignError(
            f"{path} already holds a run; medalign never overwrites one. "
            "Use a new hydra.run.dir (the default is unique per run)."
        )


def adopt_hydra_record(run_dir: Path, subdir: str) -> Path | None:
    """Move Hydra's record of this run from `run_dir/subdir` (a fresh per-process folder)
    to `.hydra/`, redacted; a resume keeps the first `.hydra/` and files its own record as
    `.hydra/resumed-<time>/`. Returns where it went (None if there was nothing)."""
    pending = run_dir / subdir
    if subdir == ".hydra" or not pending.is_dir():
        return None
    redact_yaml_files(pending)
    target = run_dir / ".hydra"
    if target.exists():
        target = target / f"resumed-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    os.replace(pending, target)
    return target


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _to_yaml(config: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))
