"""W&B run lifecycle: one run per stage, closed in `finally` so failed runs close too.

A resumed stage continues the W&B run its manifest recorded (same id, `resume="allow"`).

Mode: `WANDB_MODE` in the environment wins; else `logger.mode`; else online when an
API key is configured (WANDB_API_KEY or ~/.netrc), offline otherwise, so a machine
without network or login still records every metric locally.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medalign.config import LoggerConfig
from medalign.outputs import redact

log = logging.getLogger(__name__)


def resolve_mode(cfg: LoggerConfig) -> str:
    if cfg.name == "none":
        return "disabled"
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if cfg.mode:
        return cfg.mode
    netrc = Path.home() / ".netrc"
    logged_in = bool(os.environ.get("WANDB_API_KEY")) or (
        netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    )
    return "online" if logged_in else "offline"


class Tracker:
    """The W&B run of one stage, or a null tracker when logging is off."""

    def __init__(self, run: Any = None) -> None:
        self.run = run

    @property
    def enabled(self) -> bool:
        return self.run is not None

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(metrics)

    def summary(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(metrics)

    def log_images(self, images: dict[str, Path]) -> None:
        if self.run is not None and images:
            import wandb

            self.run.log({key: wandb.Image(str(path)) for key, path in images.items()})

    def finish(self, ok: bool) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if ok else 1)
            self.run = None


def start_tracking(
    cfg: LoggerConfig,
    *,
    name: str,
    job_type: str,
    run_dir: Path,
    config: dict[str, Any],
    group: str | None = None,
    run_id: str | None = None,
) -> Tracker:
    """Start the stage's W&B run (in `run_dir/wandb/`), or return a null tracker.

    `run_id`: the W&B run a resumed stage recorded; it is continued (`resume="allow"`),
    not duplicated."""
    mode = resolve_mode(cfg)
    if mode == "disabled" or int(os.environ.get("RANK", "0")) > 0:  # rank 0 alone logs
        return Tracker()
    import wandb

    run = wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        group=group or cfg.group or job_type,
        job_type=job_type,
        name=name,
        tags=list(cfg.tags),
        config=flatten(redact(config)),
        dir=str(run_dir),
        mode=mode,
        reinit="finish_previous",
        id=run_id,
        resume="allow" if run_id else None,
        settings=wandb.Settings(silent=True, save_code=False, x_disable_meta=True),
    )
    how = "continued" if run_id else "started"
    log.info("W&B run %s %s (%s mode) in %s", run.id, how, mode, run_dir / "wandb")
    return Tracker(run)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"lora": {"r": 8}} -> {"lora.r": 8}: W&B's table and filters read flat keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
