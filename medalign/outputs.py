"""The run directory: resolved config, manifest, and the promise never to clobber a run.

The manifest is written atomically (temp file, then rename), so a kill at any moment
leaves a readable one; a run counts as complete only when its status says "done".
Secrets never reach disk: keys named like a token/key/password and the values of such
environment variables are replaced before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from medalign import __version__
from medalign.errors import MedalignError

REDACTED = "***"
_SECRET_KEY = re.compile(r"(?i)(^|_)(api_?key|access_?key|secret|password|passwd|token|auth)$")
_SECRET_ENV = re.compile(r"(?i)(token|key|password|passwd|secret)")


def secret_values() -> list[str]:
    """Values of environment variables named like secrets (WANDB_API_KEY, HF_TOKEN, ...)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of `obj` with secret-named keys and secret values replaced by ***."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) and obj[k] else redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
    return obj


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and a rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(redact(data), indent=2, default=str) + "\n")
    os.replace(tmp, path)


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
    """One stage run's directory and its manifest.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / "manifest.json"
        self.manifest: dict[str, Any] = {}

    @classmethod
    def create(cls, path: Path, stage: str, config: dict[str, Any], reopen: bool = False) -> RunDir:
        """Claim `path` for a new run; refuse a directory that already holds one, unless
        `reopen` resumes an unfinished one (a finished run is never reopened)."""
        path.mkdir(parents=True, exist_ok=True)
        if reopen and (path / "manifest.json").exists():
            run = cls(path)
            run.manifest = json.loads(run.manifest_path.read_text())
            if run.stage.get("status") == "done":
                raise MedalignError(f"{path} is a finished run; it is never reopened")
            run.stage.pop("error", None)
            run.update(status="running", resumed=_now())
            return run
        if (path / "manifest.json").exists() or (path / "adapter").exists():
            raise MedalignError(
                f"{path} already holds a run; medalign never overwrites one. "
                "Use a new hydra.run.dir (the default is unique per run)."
            )
        run = cls(path)
        (path / "config.yaml").write_text(_to_yaml(redact(config)))
        run.manifest = {
            "kind": "stage",
            "medalign_version": __version__,
            "git_commit": git_commit(),
            "stages": [{"name": stage, "status": "running", "started": _now()}],
        }
        run.save()
        return run

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
        write_json_atomic(self.manifest_path, self.manifest)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _to_yaml(config: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))
