"""The command line: `python -m medalign [group=option ...] [key=value ...]`.

Thin on purpose: override typos are caught before Hydra (Hydra's own message would
suggest `+key`), Hydra composes the config, and `medalign.run.run` does the work.
Nothing here imports torch, so `--help` and `--cfg job` answer fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from medalign.errors import MedalignError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("medalign")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from medalign.run import run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        metrics = run(cfg, run_dir, overrides=list(hydra_cfg.overrides.task))
    except MedalignError as exc:
        log.error("%s", exc)
        print(f"medalign: error: {exc}", file=sys.stderr)
        sys.exit(1)
    return metrics.get("train/loss") if isinstance(metrics, dict) else None


def main() -> None:
    from medalign.config import check_overrides

    overrides = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    try:
        check_overrides(overrides)
    except MedalignError as exc:
        print(f"medalign: error: {exc}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
