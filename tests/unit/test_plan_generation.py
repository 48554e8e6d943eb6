"""The RL plan's generation model and vLLM share (medalign/plan/generation.py), by hand on
the tiny architecture, and the start-up refusal of a colocated vLLM plan that does not
fit. Fast: the model is built on the meta device; nothing loads.

Tiny (conf/model/tiny.yaml): hidden 64, 2 layers, 2 KV heads of 16, vocabulary 2048,
fp32, an untied LM head; LoRA r=8 on all linears (tests/unit/test_plan.py counts them).
"""

from __future__ import annotations

import functools

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose

BASE, LORA, EMBED = 360768, 19456, 2048 * 64  # tests/unit/test_plan.py's hand counts
RL = ("stage=plan", "plan.for_stage=rl", "plan.micro_batch=2", "plan.seq_len=48")
SMALL_GPU = ("plan.gpu=custom", "plan.gpu_tflops=10", "plan.gpu_memory_gb=4")


@functools.cache
def _plan(*overrides: str, device: str = "gpu") -> dict:
    from medalign.plan.planner import make_plan

    return make_plan(validate(compose(*RL, *overrides)), device=device)


def test_generation_tokens_per_second_by_hand() -> None:
    """HF generate: each step reads every weight but the (untied) input embedding, fp32,
    plus the fp32 adapter, and the KV cache at its mean length; tokens/s = batch x 0.6 x
    bandwidth / those bytes."""
    from medalign.plan.formulas import GPUS

    plan = _plan("plan.gpu=h200", "rl.max_completion_length=16")
    gen = plan["compute"]["generation"]
    accum = plan["workload"]["accum"]
    batch = 2 * accum  # TRL: per-device batch x steps_per_generation (= accumulation)
    weights = (BASE - EMBED) * 4 + LORA * 4
    kv = 2 * 2 * 2 * 16 * (48 - 16 / 2) * batch * 4  # K,V x layers x heads x dim x tokens
    expected = batch * 0.6 * GPUS["h200"].bandwidth_tbs * 1e12 / (weights + kv)
    assert gen["backend"] == "hf" and gen["concurrent_sequences"] == batch
    assert gen["weight_bytes_per_step"] == weights
    assert gen["kv_bytes_per_step"] == pytest.approx(kv)
    assert gen["generation_tokens_per_second"] == pytest.approx(expected, rel=1e-3)
    assert plan["compute"]["generation_tokens_per_second"] == gen["generation_tokens_per_second"]
    seconds = batch * 16 / expected
    assert plan["compute"]["generation_seconds_per_step"] == pytest.approx(seconds, abs=1e-4)


def test_tokens_per_second_grow_with_the_batch_and_the_bandwidth() -> None:
    from medalign.plan.formulas import generation_tokens_per_second as tps

    assert tps(1e9, 0, 4, 1e12, 0.5) == pytest.approx(2000.0)
    assert tps(1e9, 0, 8, 1e12, 0.5) == pytest.approx(2 * tps(1e9, 0, 4, 1e12, 0.5))
    assert tps(1e9, 1e9, 4, 1e12, 0.5) == pytest.approx(tps(1e9, 0, 4, 1e12, 0.5) / 2)


def test_vllm_share_follows_the_config_key() -> None:
    """vllm_colocate is rl.vllm_gpu_memory_utilization x the GPU's memory (not a fixed
    0.3), outside the allocator reserve; vLLM decodes from its own copy in the model's
    dtype (fp32 for tiny) and keeps its KV cache in its share, not on the training side."""
    from medalign.plan.formulas import GIB

    low = _plan(*SMALL_GPU, "rl.use_vllm=true", "rl.vllm_gpu_memory_utilization=0.3")
    high = _plan(*SMALL_GPU, "rl.use_vllm=true", "rl.vllm_gpu_memory_utilization=0.6")
    hf = _plan(*SMALL_GPU)
    assert low["memory_bytes"]["vllm_colocate"] == pytest.approx(0.3 * 4 * GIB)
    assert high["memory_bytes"]["vllm_colocate"] == pytest.approx(0.6 * 4 * GIB)
    assert low["memory_bytes"]["allocator_reserve"] == pytest.approx(
        hf["memory_bytes"]["allocator_reserve"] - 0.1 * hf["memory_bytes"]["kv_cache"]
    )
    assert "kv_cache" not in low["memory_bytes"] and "kv_cache" in hf["memory_bytes"]
    assert low["compute"]["generation"]["backend"] == "vllm"
    assert low["compute"]["generation"]["weight_bytes_per_step"] == (BASE - EMBED) * 4
    assert low["colocate"]["vllm_share_gib"] == pytest.approx(1.2)


def test_sleep_mode_overlaps_the_share_with_the_update() -> None:
    """Asleep during the update, vLLM's share and the update's transient memory
    (activations, loss head, gradients) are never live together."""
    over = (*SMALL_GPU, "rl.use_vllm=true", "rl.vllm_gpu_memory_utilization=0.3")
    awake = _plan(*over)["memory_bytes"]
    asleep = _plan(*over, "rl.vllm_enable_sleep_mode=true")["memory_bytes"]
    transient = awake["activations"] + awake["logits_loss"] + awake["gradients"]
    assert asleep["vllm_colocate"] == pytest.approx(max(0.0, awake["vllm_colocate"] - transient))
    assert sum(asleep.values()) < sum(awake.values())


def _rl(*overrides: str):
    return validate(compose("stage=rl", "rl.use_vllm=true", *SMALL_GPU, *overrides))


def test_colocate_check_refuses_a_plan_that_does_not_fit() -> None:
    from medalign.plan.colocate import check_colocate

    with pytest.raises(MedalignError, match=r"colocate does not fit plan.gpu=custom \(4 GiB\)"):
        check_colocate(_rl("rl.vllm_gpu_memory_utilization=0.9"))
    with pytest.raises(MedalignError, match="lower rl.vllm_gpu_memory_utilization"):
        check_colocate(_rl("rl.vllm_gpu_memory_utilization=0.9"))
    summary = check_colocate(_rl("rl.vllm_gpu_memory_utilization=0.5"))
    assert summary is not None and summary["total_gib"] < 4
    assert summary["training_gib"] + summary["vllm_share_gib"] == pytest.approx(
        summary["total_gib"], abs=1e-2
    )


def test_colocate_check_refuses_a_share_too_small_for_the_weights() -> None:
    from medalign.plan.colocate import check_colocate

    with pytest.raises(MedalignError, match=r"rl.vllm_gpu_memory_utilization=0.1 .*raise it"):
        check_colocate(_rl("rl.vllm_gpu_memory_utilization=0.1"))  # 0.4 GiB < 1 GiB overhead


def test_colocate_check_applies_to_colocated_rl_only() -> None:
    from medalign.plan.colocate import check_colocate

    tiny_share = "rl.vllm_gpu_memory_utilization=0.1"  # would be refused if checked
    assert check_colocate(_rl(tiny_share, "rl.vllm_mode=server")) is None
    assert check_colocate(validate(compose("stage=rl", *SMALL_GPU))) is None
    assert check_colocate(validate(compose("rl.use_vllm=true", tiny_share, *SMALL_GPU))) is None


def test_start_up_checks_run_the_colocate_check(monkeypatch) -> None:
    """check_components refuses the plan before any model loads (the CUDA/vllm switch
    check, which fails first on this machine, is stubbed out)."""
    import medalign.models.switches as switches
    from medalign.checks import check_components

    monkeypatch.setattr(switches, "check_switches", lambda cfg, **kw: None)
    with pytest.raises(MedalignError, match="colocate does not fit"):
        check_components(_rl("rl.vllm_gpu_memory_utilization=0.9"))
    check_components(_rl("rl.vllm_gpu_memory_utilization=0.5"))


def test_share_out_of_range_names_the_key() -> None:
    from medalign.checks import check_ranges

    with pytest.raises(MedalignError, match=r"rl.vllm_gpu_memory_utilization=1.5: must be in"):
        check_ranges(validate(compose("rl.vllm_gpu_memory_utilization=1.5")))


def test_trl_gets_the_share_and_sleep_mode() -> None:
    from medalign.stages.rl_algorithms import vllm_args

    cfg = _rl("rl.vllm_gpu_memory_utilization=0.45", "rl.vllm_enable_sleep_mode=true")
    assert vllm_args(cfg.rl) == {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.45,
        "vllm_enable_sleep_mode": True,
    }
    server = _rl("rl.vllm_mode=server")
    assert vllm_args(server.rl) == {"use_vllm": True, "vllm_mode": "server"}
