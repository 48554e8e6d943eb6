"""Resume points that survive a kill: the newest *complete* checkpoint, a complete adapter.

A kill (or a full disk) while the Trainer writes `checkpoint-N` leaves a directory that
`transformers.trainer_utils.get_last_checkpoint` still picks, and the resume dies with
"Can't find a valid checkpoint". The Trainer writes a checkpoint's weights first and
`trainer_state.json` last, so a checkpoint is complete when its trainer state parses and
its weights are readable to the end (safetensors checks that the data covers the header):

    path, skipped = newest_complete_checkpoint(run_dir / "checkpoints")
    resume = latest_checkpoint(run_dir / "checkpoints")   # the same, logged; None = start
    adapter = completed_adapter(run_dir)                   # training done: only eval left

(stages/eval.py `evaluate_saved` then runs only the evaluation.)
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)
WEIGHTS = ("adapter_model.safetensors", "model.safetensors")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def unreadable_weights(folder: Path) -> str | None:
    """Why the weights in `folder` cannot be loaded, or None when they can."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():  # a sharded full model
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            return f"{index.name} unreadable ({exc})"
        files = [folder / shard for shard in shards]
    else:
        files = [folder / name for name in WEIGHTS if (folder / name).is_file()][:1]
        if not files:
            return f"weights missing ({' or '.join(WEIGHTS)})"
    from safetensors import safe_open

    for path in files:
        if not path.is_file():
            return f"weights missing ({path.name})"
        try:
            with safe_open(str(path), framework="numpy") as handle:
                handle.keys()
        except Exception as exc:  # SafetensorError, OSError: the file is cut short
            return f"{path.name} unreadable ({exc})"
    return None


def incomplete(checkpoint: Path) -> str | None:
    """Why Trainer checkpoint `checkpoint` cannot be resumed from, or None."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json missing (killed while the checkpoint was written)"
    try:
        if "global_step" not in json.loads(state.read_text()):
            return "trainer_state.json has no global_step"
    except (OSError, ValueError) as exc:
        return f"trainer_state.json unreadable ({exc})"
    return unreadable_weights(checkpoint)


def newest_complete_checkpoint(folder: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete `checkpoint-N` in `folder` (None if none), and each newer one
    skipped with the reason."""
    folder = Path(folder)
    if not folder.is_dir():
        return None, []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name))]
    skipped: list[tuple[Path, str]] = []
    for _, path in sorted(found, reverse=True):
        why = incomplete(path) if path.is_dir() else "not a directory"
        if why is None:
            return path, skipped
        skipped.append((path, why))
    return None, skipped


def remove_partial_checkpoints(folder: Path) -> list[Path]:
    """Delete the `checkpoint-N` folders newer than the newest complete one that cannot be
    resumed from (a write a full disk cut short): they only hold space. Complete
    checkpoints, and anything not named `checkpoint-N`, are left. Returns what it removed."""
    import shutil

    _, skipped = newest_complete_checkpoint(folder)
    removed = []
    for path, why in skipped:
        if path.is_dir():
            log.warning("removing the partial checkpoint %s: %s", path, why)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def latest_checkpoint(folder: Path) -> str | None:
    """`stage.resume_from=latest`: the newest complete checkpoint, logging each one skipped;
    None (with a warning: training starts from step 0) when there is none."""
    path, skipped = newest_complete_checkpoint(folder)
    for bad, why in skipped:
        log.warning("not resuming from %s: %s", bad, why)
    if path is None:
        log.warning(
            "stage.resume_from=latest: no complete checkpoint in %s; training starts from "
            "step 0 (the stage was stopped before its first save, or trainer.save_steps is "
            "0 or above trainer.max_steps)",
            folder,
        )
        return None
    return str(path)


def completed_adapter(run_dir: Path) -> Path | None:
    """The stage's saved `adapter/` (or `model/` for a full fine-tune) when it is complete:
    training is over, and a resume only has the evaluation left to do."""
    for name, config in (("adapter", "adapter_config.json"), ("model", "config.json")):
        folder = Path(run_dir) / name
        if (folder / config).is_file() and unreadable_weights(folder) is None:
            return folder
    return None
