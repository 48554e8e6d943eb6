"""Start-up checks that need the registry (tasks, RL algorithms): run after the config is
typed and before anything is written or loaded, so a wrong name fails in a second.

Kept out of config.py so the config layer imports nothing above it.
"""

from __future__ import annotations

from medalign.config import RunConfig
from medalign.errors import MedalignError


def check_components(cfg: RunConfig) -> None:
    """Names that must resolve in the registry (tasks, RL algorithms), checked at start-up."""
    from medalign.registry import names
    from medalign.tasks.base import check_config

    check_config(cfg.dataset, "dataset")
    for name, dcfg in cfg.datasets.items():
        check_config(dcfg, f"datasets.{name}")
    if cfg.stage.kind in ("rl", "curriculum") and cfg.rl.algorithm not in names("rl_algorithm"):
        if cfg.rl.algorithm == "ppo":
            raise MedalignError(
                "rl=ppo: PPOTrainer is not in this TRL (trl.experimental.ppo was removed in TRL "
                "1.13, and medalign keeps the newest TRL for every other trainer). Use rl=grpo "
                "or rl=rloo (critic-free policy gradients on the same rewards), or rl=dpo; for "
                "classic PPO, install trl==1.12.0 in a separate environment."
            )
        raise MedalignError(
            f"config rl.algorithm: unknown RL algorithm {cfg.rl.algorithm!r}; registered: "
            f"{', '.join(names('rl_algorithm'))}"
        )
