"""Resume is a replay: a resumed run recomposes from the config it recorded at its start.

An override given on resume that would change a recorded value is refused, naming the
key and both values; a short allow-list may change (`trainer.max_steps`, to train a
stage for longer, and the logger's mode).
"""

from __future__ import annotations

from typing import Any

from medalign.errors import MedalignError
from medalign.outputs import REDACTED

ALLOWED_ON_RESUME = ("trainer.max_steps", "logger.mode", "logger.name", "stage.resume_from")


def differences(recorded: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, recorded value, new value) for every leaf that differs."""
    if isinstance(recorded, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(recorded) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            out += differences(recorded.get(key), new.get(key), path)
        return out
    if recorded in (new, REDACTED):
        return []
    return [(prefix, recorded, new)]


def refuse_changes(recorded: dict, new: dict, where: str) -> None:
    """Raise when `new` changes a recorded value outside ALLOWED_ON_RESUME."""
    for key, old, value in differences(recorded, new):
        if key == "hydra" or key.startswith(("hydra.", "resume")) or key in ALLOWED_ON_RESUME:
            continue
        raise MedalignError(
            f"resume of {where}: {key}={value!r} would change the recorded {key}={old!r}; a "
            "resumed run replays its recorded config (only "
            f"{', '.join(a for a in ALLOWED_ON_RESUME if a != 'stage.resume_from')} may change). "
            "Start a new run for a different config."
        )
