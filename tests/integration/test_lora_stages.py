"""One LoRA builder for every stage: the adapter variant in `lora.*` (DoRA, rsLoRA, LoRA+,
bias, PiSSA ...) reaches the reward models and the RL policy exactly as it reaches SFT, and
the planner sizes the same adapter the stage trains (models/lora.py `lora_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medalign.config import validate
from medalign.run import run
from tests.conftest import compose


def _capture_train(monkeypatch: pytest.MonkeyPatch, trainer_cls: Any) -> dict[str, Any]:
    """What a TRL trainer is about to train, read as its `train` starts (the stage merges
    the adapter away afterwards): DoRA magnitude vectors, the adapter's config, the
    optimizer's learning rates."""
    seen: dict[str, Any] = {}
    original = trainer_cls.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        seen["magnitudes"] = [n for n, _ in model.named_parameters() if "magnitude_vector" in n]
        seen["adapter"] = model.peft_config["default"]
        groups = self.optimizer.param_groups if self.optimizer is not None else []
        seen["rates"] = sorted({g["lr"] for g in groups if g["params"]})
        seen["lr"] = self.args.learning_rate
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trainer_cls, "train", train)
    return seen


def test_reward_model_trains_the_configured_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trl import RewardTrainer

    seen = _capture_train(monkeypatch, RewardTrainer)
    run(
        compose(
            "stage=reward",
            "logger=none",
            "lora=dora",
            "lora.use_rslora=true",
            "lora.loraplus_lr_ratio=4",
            "reward.objective=helpfulness",
            "reward.limit=8",
            "trainer.max_steps=1",
        ),
        tmp_path / "run",
    )
    assert seen["magnitudes"], "lora=dora: the reward model has no DoRA magnitude vectors"
    adapter = seen["adapter"]
    assert adapter.use_dora and adapter.use_rslora and str(adapter.task_type) == "SEQ_CLS"
    assert seen["rates"] == pytest.approx([seen["lr"], 4 * seen["lr"]])  # LoRA+


def test_rl_policy_trains_with_loraplus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import DPOTrainer

    seen = _capture_train(monkeypatch, DPOTrainer)
    run(
        compose(
            "stage=rl",
            "rl=dpo",
            "logger=none",
            "lora=dora",
            "lora.loraplus_lr_ratio=4",
            "reward.limit=8",
            "trainer.max_steps=1",
            "eval.after_train=false",
        ),
        tmp_path / "run",
    )
    assert seen["magnitudes"] and seen["adapter"].use_dora
    assert seen["rates"] == pytest.approx([seen["lr"], 4 * seen["lr"]])  # LoRA+


@pytest.mark.parametrize("variant", ["lora=dora", "lora.use_rslora=true", "lora.bias=lora_only"])
def test_planner_sizes_the_adapter_the_reward_stage_trains(variant: str) -> None:
    from medalign.models.lora import lora_config
    from medalign.plan.meta import build_meta

    cfg = validate(compose("stage=reward", variant))
    planned = build_meta(cfg, reward=True).peft_config["default"]
    trained = lora_config(cfg.lora, head="reward")
    keys = ("r", "lora_alpha", "lora_dropout", "use_dora", "use_rslora", "bias", "task_type")
    assert {k: getattr(planned, k) for k in keys} == {k: getattr(trained, k) for k in keys}
    assert trained.target_modules == "all-linear"  # peft expands it in place when applied
    assert {m.rsplit(".", 1)[-1] for m in planned.target_modules} == {
        *("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    }


def test_planner_counts_pissa_and_olora_like_plain_lora() -> None:
    """PiSSA/OLoRA initialise the adapter from the real weights (an SVD / QR), which the
    meta model has none of; they change values, not shapes, so the plan is LoRA's."""
    from medalign.plan.meta import build_meta, count_params

    plain = count_params(build_meta(validate(compose())))
    for variant in ("lora=pissa", "lora.init=olora"):
        counts = count_params(build_meta(validate(compose(variant))))
        assert counts["trainable"] == plain["trainable"], variant
