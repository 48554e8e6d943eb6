"""The planner's arithmetic, checked by hand on the tiny architecture; its errors; the
start-up switch checks. Fast: the model is built on the meta device.

The tiny model (conf/model/tiny.yaml): hidden 64, intermediate 192, 2 layers, 4 heads
(head_dim 16), 2 KV heads, vocabulary 2048, an untied output head; LoRA r=8 on all linears.
"""

from __future__ import annotations

import functools

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose

H, FF, L, V, KV = 64, 192, 2, 2048, 2 * 16  # KV: 2 heads x head_dim 16
# per layer: q (64x64), k and v (32x64), o (64x64); gate, up (192x64), down (64x192)
LINEARS = [(H, H), (KV, H), (KV, H), (H, H), (FF, H), (FF, H), (H, FF)]
EMBED = V * H  # 131072; the LM head (untied) is as large
LAYER = sum(o * i for o, i in LINEARS) + 2 * H  # + input and post-attention RMSNorm
BASE = 2 * EMBED + L * LAYER + H  # embedding + head + final norm = 360768
LORA = L * sum(8 * i + o * 8 for o, i in LINEARS)  # A: r x in, B: out x r = 19456


@functools.cache
def _plan(*overrides: str, device: str = "cpu") -> dict:
    from medalign.plan.planner import make_plan

    return make_plan(validate(compose("stage=plan", *overrides)), device=device)


def test_parameter_counts_by_hand() -> None:
    assert (BASE, LORA) == (360768, 19456)  # the hand count itself
    plan = _plan("plan.seq_len=32", "plan.micro_batch=2")
    params = plan["parameters"]
    assert params["total"] == BASE + LORA
    assert params["trainable"] == LORA
    assert params["by_type"]["embedding"] == EMBED
    assert params["by_type"]["lm_head"] == EMBED  # untied: its own weights
    assert params["by_type"]["attention"] == L * (2 * H * H + 2 * KV * H)
    assert params["by_type"]["mlp"] == L * 3 * H * FF


def test_memory_components_by_hand_fp32_lora() -> None:
    mem = _plan("plan.seq_len=32", "plan.micro_batch=2")["memory_bytes"]
    assert mem["base_weights"] == BASE * 4
    assert mem["lora_weights"] == LORA * 4
    assert mem["gradients"] == LORA * 4  # only the adapter trains
    assert mem["optimizer"] == LORA * 8  # AdamW: two fp32 moments
    # TRL's fused LM head on the CPU: 8 fp32 temporaries of one tile (64 tokens x 2048)
    assert mem["logits_loss"] == 8 * (2 * 32) * V * 4
    dpo = _plan("plan.seq_len=32", "plan.micro_batch=1", "plan.for_stage=dpo")["memory_bytes"]
    # DPO (the model's own loss, chosen+rejected = 2 sequences): logits, saved log-softmax,
    # two fp32 gradients; and the reference pass's logits
    assert dpo["logits_loss"] == 2 * 32 * V * 4 * 4
    assert dpo["reference"] == 2 * 32 * V * 4
    assert "cuda_context" not in mem  # device="cpu"


def test_quantized_weight_bytes_by_hand() -> None:
    rest = BASE - L * sum(o * i for o, i in LINEARS)  # embeddings + norms stay fp32
    int8 = L * sum(o * i + 4 * o for o, i in LINEARS)  # + fp32 scale per output row
    nf4 = L * sum(o * i / 2 + 4 * (o * i // 64) for o, i in LINEARS)  # fp32 absmax / 64
    # double quantization: 8-bit absmax + fp32 per 256 blocks + fp32 offset, per matrix
    nf4_dq = L * sum(
        o * i / 2 + (o * i // 64) + 4 * -(-(o * i // 64) // 256) + 4 for o, i in LINEARS
    )
    cases = {("int8", "false"): int8, ("nf4", "false"): nf4, ("nf4", "true"): nf4_dq}
    for (mode, dq), expected in cases.items():
        mem = _plan(f"quant={mode}", f"quant.double_quant={dq}")["memory_bytes"]
        assert mem["base_weights"] == pytest.approx(expected + rest * 4), (mode, dq)


def test_nf4_size_matches_bitsandbytes() -> None:
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("bitsandbytes.functional")
    from medalign.plan.formulas import nf4_bytes

    weight = torch.randn(192, 64)
    for double in (False, True):
        packed, state = functional.quantize_4bit(
            weight, blocksize=64, compress_statistics=double, quant_type="nf4"
        )
        size = packed.numel() * packed.element_size()
        size += state.absmax.numel() * state.absmax.element_size()
        if double:
            size += state.state2.absmax.numel() * 4 + 4  # second-level constants + offset
        assert size == nf4_bytes(weight.numel(), double)


def test_activations_scale_and_checkpointing_saves() -> None:
    one = _plan("plan.seq_len=64", "plan.micro_batch=1")["memory_bytes"]["activations"]
    four = _plan("plan.seq_len=64", "plan.micro_batch=4")["memory_bytes"]["activations"]
    ckpt = _plan("plan.seq_len=64", "plan.micro_batch=4", "plan.gradient_checkpointing=true")
    assert four == pytest.approx(4 * one)
    assert ckpt["memory_bytes"]["activations"] < four


def test_compute_by_hand() -> None:
    from medalign.plan.formulas import train_flops_per_token

    plan = _plan("plan.seq_len=32", "plan.micro_batch=2", "plan.gpu=a100_80gb", "plan.mfu=0.5")
    matmul = L * sum(o * i for o, i in LINEARS) + V * H + LORA  # + the (tied) LM head
    forward = 2 * matmul + 2 * L * 32 * 64
    assert plan["compute"]["flops_per_token"] == forward + forward + 4 * LORA
    # full fine-tune with recomputation: forward + 2 forwards + 1 recomputed forward
    assert train_flops_per_token(10, 10, 1, 1, 1, False, True) == 4 * (2 * 10 + 2)
    tokens = 2 * 32
    assert plan["compute"]["step_seconds"] == pytest.approx(
        (2 * forward + 4 * LORA) * tokens / (312e12 * 0.5), rel=1e-3, abs=1e-4
    )


def test_gpu_verdict_and_knobs() -> None:
    plan = _plan("plan.gpu=custom", "plan.gpu_memory_gb=0.65", "plan.gpu_tflops=10", device="gpu")
    assert plan["total_gib"] > 0.6  # the CUDA context alone is 0.6 GiB
    assert plan["fits"] is False
    assert plan["knobs"] and all("knob" in k for k in plan["knobs"])
    savings = [k["saves_gib"] for k in plan["knobs"] if not k["fits"]]
    assert savings == sorted(savings, reverse=True)


def test_unknown_gpu_lists_known_ones() -> None:
    with pytest.raises(MedalignError, match="a100_40gb.*gpu_memory_gb"):
        _plan("plan.gpu=b300")


def test_model_without_architecture_is_refused() -> None:
    with pytest.raises(MedalignError, match="no architecture numbers.*hidden_size"):
        _plan("model.architecture.hidden_size=null")


def test_switches_name_what_is_missing() -> None:
    from medalign.models.switches import check_switches

    cfg = validate(compose("model.attn_implementation=flash_attention_2"))
    with pytest.raises(MedalignError, match="CUDA GPU.*flash-attn"):
        check_switches(cfg, cuda=False)
    cfg = validate(compose("model.liger=true"))
    with pytest.raises(MedalignError, match="liger-kernel"):
        check_switches(cfg, cuda=True)
    cfg = validate(compose("rl.use_vllm=true", "rl.vllm_mode=server"))
    with pytest.raises(MedalignError, match=r"rl.use_vllm=true \(vllm_mode=server\) needs a CUDA"):
        check_switches(cfg, cuda=False)
    cfg = validate(compose("rl=dpo", "rl.use_vllm=true"))
    with pytest.raises(MedalignError, match="only GRPO and RLOO"):
        check_switches(cfg, cuda=True)
    check_switches(validate(compose()), cuda=False)  # defaults need nothing


def test_stage_plan_writes_plan_json(tmp_path, capsys) -> None:
    import json

    from medalign.run import run

    metrics = run(compose("stage=plan", "logger=none", "model=llama3_8b", "quant=nf4"), tmp_path)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["parameters"]["by_type"]["lm_head"] == 128256 * 4096  # untied in Llama 3
    assert metrics["plan/total_gib"] == plan["total_gib"]
    assert "Memory per GPU (GiB)" in capsys.readouterr().out


# Total parameters of the published checkpoints (the hub's safetensors metadata); the
# architecture numbers in conf/model/*.yaml must reproduce them exactly.
PUBLISHED_PARAMS = {
    "llama3_8b": 8_030_261_248,
    "biomistral_7b": 7_241_732_096,  # Mistral-7B-v0.1
    "mistral_7b_instruct_v03": 7_248_023_552,
    "qwen25_7b_instruct": 7_615_616_512,
    "gemma2_9b_it": 9_241_705_984,
    "phi35_mini_instruct": 3_821_079_552,
}


@pytest.mark.parametrize("model", sorted(PUBLISHED_PARAMS))
def test_architecture_numbers_reproduce_published_parameter_counts(model: str) -> None:
    from medalign.plan.meta import build_meta, count_params

    counts = count_params(build_meta(validate(compose(f"model={model}", "lora=none"))))
    assert counts["total"] == PUBLISHED_PARAMS[model]


def test_quantized_step_time_uses_measured_throughput() -> None:
    """bitsandbytes dequantizes in every matmul: the H200 measurement (bench/RESULTS.md)
    gave nf4 0.81x and int8 0.27x of bf16's training tokens/s at the same FLOPs."""
    from medalign.plan.formulas import QUANT_THROUGHPUT

    bf16 = _plan("plan.seq_len=32", "plan.micro_batch=2", "plan.gpu=h200")["compute"]
    for quant in ("nf4", "int8"):
        c = _plan("plan.seq_len=32", "plan.micro_batch=2", "plan.gpu=h200", f"quant={quant}")
        c = c["compute"]
        assert c["flops_per_token"] == bf16["flops_per_token"]
        assert c["quant_throughput"] == QUANT_THROUGHPUT[quant] < 1.0
        assert c["step_seconds"] == pytest.approx(bf16["step_seconds"] / c["quant_throughput"])


def test_int8_plan_carries_the_measured_caveat() -> None:
    """The int8 memory estimate was 4.4x under the H200 measurement: a plan that says so,
    rather than a silently optimistic number; nf4 (measured within 3%) has no caveat."""
    int8 = _plan("quant=int8", device="gpu")
    assert any("lower bound" in c for c in int8["caveats"])
    assert _plan("quant=nf4", device="gpu")["caveats"] == []
    small = ("plan.gpu=custom", "plan.gpu_memory_gb=0.65", "plan.gpu_tflops=10")
    knobs = _plan(*small, device="gpu")["knobs"]
    assert not any(k["knob"] == "quant=int8" for k in knobs)  # nf4 is smaller and faster


def test_an_int8_plan_that_fits_only_by_its_lower_bound_is_not_called_a_fit() -> None:
    """A GPU whose memory holds the int8 estimate but not the measured 4.45x of it: the
    verdict is unknown (None), not "fits", and nf4 is offered."""
    from medalign.plan.formulas import INT8_MEASURED_RATIO

    lower = _plan("quant=int8", device="gpu")["total_gib"]
    between = (lower * 1.5, lower * INT8_MEASURED_RATIO * 1.1)
    small = _plan(
        "quant=int8",
        "plan.gpu=custom",
        "plan.gpu_tflops=10",
        f"plan.gpu_memory_gb={between[0]}",
        device="gpu",
    )
    assert small["fits"] is None
    assert any(k["knob"] == "quant=nf4" for k in small["knobs"])
    big = _plan(
        "quant=int8",
        "plan.gpu=custom",
        "plan.gpu_tflops=10",
        f"plan.gpu_memory_gb={between[1]}",
        device="gpu",
    )
    assert big["fits"] is True


def test_a_fit_within_the_plans_accuracy_is_flagged() -> None:
    total = _plan(device="gpu")["total_gib"]
    tight = _plan(
        "plan.gpu=custom", "plan.gpu_tflops=10", f"plan.gpu_memory_gb={total * 1.02}", device="gpu"
    )
    assert tight["fits"] is True and tight["tight"] is True
    roomy = _plan(
        "plan.gpu=custom", "plan.gpu_tflops=10", f"plan.gpu_memory_gb={total * 1.5}", device="gpu"
    )
    assert roomy["tight"] is False


def test_the_planner_knows_the_pretraining_stage() -> None:
    """Issue 22: stage=plan plans a stage=pretrain step (an SFT step of packed blocks)."""
    from medalign.plan.planner import make_plan

    pretrain = make_plan(validate(compose("stage=plan", "plan.for_stage=pretrain")))
    sft = make_plan(validate(compose("stage=plan", "plan.for_stage=sft")))
    assert pretrain["total_gib"] == sft["total_gib"] > 0
