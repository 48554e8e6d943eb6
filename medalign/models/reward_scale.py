"""Read a reward model's fitted score scale and apply it (rewards/scale.py fits it).

Here, below evaluation and rewards, because both read a scored reward model on its scale:
RL's reward functions (rewards/functions.py) and the safety evaluation's judgement
(eval/safety.py). The scale is `scale.json` beside the model: z = (score - mean) / std.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCALE_FILE = "scale.json"


def standardize(raw: list[float], scale: dict[str, Any]) -> list[float]:
    """`raw` on the fitted scale; a model that scores every answer alike tells nothing
    (std 0), so it scores 0 everywhere."""
    std = float(scale["std"])
    if std <= 1e-8:
        return [0.0 for _ in raw]
    return [(s - float(scale["mean"])) / std for s in raw]


def read_scale(model_dir: str | Path) -> dict[str, Any] | None:
    """The fitted scale beside a reward model, or None (a model from before #33)."""
    path = Path(model_dir) / SCALE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())
