"""One `StageSpec` per stage kind: everything medalign knows about a kind, in one object.

    SPEC = register_stage(StageSpec(kind="sft", schema=SFTStageConfig, run=run_sft,
                                    curriculum="dataset", hands_on="adapter", ...))

Why: what a kind is (its `stage.*` schema, its start-up check, what it does in a
curriculum, its runner) used to be spread over a closed table in config.py, literal
comparisons in checks.py and curriculum.py, and a module global carrying a check's
result to the run. A spec is registered under `stage.kind` like a Task or a reward
function, so a kind from a plugin package is found exactly like medalign's own
(docs/extend/stage.md), and config validation, the start-up checks and the curriculum
read its roles instead of its name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.models.init_from import StartingPoint
from medalign.outputs import RunDir
from medalign.registry import get, names, register, register_base
from medalign.tracking import Tracker

CURRICULUM_ROLES = (None, "dataset", "step", "baseline")
HANDS_ON = (None, "adapter", "reward_models")
EVALUATES = ("never", "after_train", "always")
VALIDATION = ("none", "sft", "warn")
BEFORE = "before"  # the curriculum's first stage: the base model evaluated (eval_before)


@dataclass(frozen=True)
class StageInputs:
    """What a runner receives besides its config, typed (medalign.run builds it once the
    run directory is claimed and W&B is started)."""

    path: Path  # the stage's run directory: everything it writes goes under it
    record: RunDir  # its manifest.json: `record.update(adapter=...)` persists at once
    start: StartingPoint | None  # init_from, resolved once; None: the configured model
    tracker: Tracker  # W&B (or the null tracker)
    checked: Any = None  # what the kind's start-up check returned (read once, reused)


Runner = Callable[[RunConfig, StageInputs], dict[str, Any]]
Pipeline = Callable[..., dict[str, Any]]  # (cfg, run_dir, overrides, hydra_subdir=...)


@dataclass(frozen=True)
class StageSpec:
    """A stage kind. Exactly one of `run` (one stage in one run directory) and `pipeline`
    (a run of runs, called before any run directory is claimed: the curriculum).

    Roles, read instead of the kind's name:
    - `curriculum`: how the kind joins `curriculum.order`: "dataset" (every dataset name
      is a stage of this kind: SFT), "step" (by its own name: pretrain, reward, rl, a
      plugin's), "baseline" (the `before` evaluation), None (never in a curriculum).
    - `hands_on`: what a finished stage gives the later ones: "adapter" (they continue
      it), "reward_models" (RL reads them), None.
    - `reads_reward_models`: the reward models trained earlier are passed to it.
    - `generates`: trains on its own generations (rl.use_vllm and colocation apply).
    - `evaluates`: "always", "after_train" (when eval.after_train), "never".
    - `fine_tunes`: trains the language model on text (SFT): full fine-tuning of
      quantized weights is refused, the model card names its dataset.
    - `validation`: what trainer.eval_steps means: "sft" (held-out rows, checked),
      "warn" (ignored, with a warning), "none" (ignored).
    - `resumable`: `stage.resume_from=latest` continues its checkpoints.
    - `plans_only`: loads no model (switches need neither CUDA nor their packages).
    - `settings`: the group whose keys the model card shows over `trainer`'s.
    """

    kind: str
    schema: type
    run: Runner | None = None
    pipeline: Pipeline | None = None
    check: Callable[[RunConfig], Any] | None = None
    curriculum: str | None = None
    hands_on: str | None = None
    reads_reward_models: bool = False
    generates: bool = False
    evaluates: str = "never"
    fine_tunes: bool = False
    validation: str = "none"
    resumable: bool = False
    plans_only: bool = False
    settings: str | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.pipeline is None):
            raise MedalignError(f"stage kind {self.kind!r}: give exactly one of run, pipeline")
        for key, value, valid in (
            ("curriculum", self.curriculum, CURRICULUM_ROLES),
            ("hands_on", self.hands_on, HANDS_ON),
            ("evaluates", self.evaluates, EVALUATES),
            ("validation", self.validation, VALIDATION),
        ):
            if value not in valid:
                shown = ", ".join("None" if v is None else v for v in valid)
                raise MedalignError(
                    f"stage kind {self.kind!r}: {key}={value!r}, not one of {shown}"
                )

    def will_evaluate(self, after_train: bool) -> bool:
        """Whether a run of this kind evaluates, given eval.after_train."""
        return self.evaluates == "always" or (self.evaluates == "after_train" and after_train)


register_base("stage", StageSpec, instances=True)


def register_stage(spec: StageSpec) -> StageSpec:
    """Register `spec` under its kind (a name taken twice is one line naming both)."""
    return register("stage", spec.kind)(spec)


def stage_spec(kind: str) -> StageSpec:
    """The spec of `kind`: a registered name (a plugin's too) or a dotted path to one."""
    return get("stage", kind)


def specs() -> list[StageSpec]:
    """Every registered spec, by kind."""
    return [get("stage", kind) for kind in names("stage")]


def the_one(role: str, value: Any) -> StageSpec:
    """The single spec whose `role` is `value` (the curriculum's SFT kind, its baseline)."""
    found = [s for s in specs() if getattr(s, role) == value]
    if len(found) != 1:
        kinds = ", ".join(s.kind for s in found) or "none"
        raise MedalignError(f"exactly one stage kind must have {role}={value!r}; found: {kinds}")
    return found[0]


def curriculum_spec(name: str) -> StageSpec:
    """The kind of the curriculum stage `name`: `before` -> the baseline evaluation; a
    kind that joins curriculum.order under its own name -> that kind; every other name
    is a stage of the per-dataset kind (SFT) on that dataset."""
    if name == BEFORE:
        return the_one("curriculum", "baseline")
    kind = name if name in names("stage") else stage_yaml_kind(name)
    if kind is not None and stage_spec(kind).curriculum == "step":
        return stage_spec(kind)
    return the_one("curriculum", "dataset")


@functools.cache  # read once per name: the curriculum asks for every stage, at each check
def stage_yaml_kind(name: str) -> str | None:
    """The `kind` of medalign's stage config `conf/stage/<name>.yaml` (None: none there),
    so that a stage config of a step kind joins curriculum.order under its own name:
    `dpo` and `kto` are RL stages (kind: rl) with their own algorithm."""
    from importlib.resources import files

    import yaml

    path = files("medalign") / "conf" / "stage" / f"{name}.yaml"
    if not path.is_file():
        return None
    kind = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("kind")
    return kind if isinstance(kind, str) and kind in names("stage") else None
