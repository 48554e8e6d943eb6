"""The planner's arithmetic: bytes per parameter, quantized sizes, FLOPs, GPUs.

Pure functions of numbers (no torch), each with the source it follows, so a test can
check them by hand and the planner (medalign/plan/planner.py) can stay a composition.

Sources
- Mixed-precision AdamW bookkeeping (weights, gradients, two moments): Rajbhandari et al.
  2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", sec. 3.1;
  ZeRO-2 shards gradients + optimizer states, ZeRO-3 (= FSDP FULL_SHARD) also weights.
- LLM.int8(): Dettmers et al. 2022: int8 weight + one fp32 scale per output row
  (bitsandbytes `Int8Params.SCB`).
- NF4 / double quantization: Dettmers et al. 2023, "QLoRA", sec. 3: 4-bit weights in
  blocks of 64 with an fp32 absmax each (0.5 bit/param); double quantization stores the
  absmax in 8 bits with one fp32 constant per 256 blocks (8/64 + 32/(64*256) = 0.127
  bit/param). bitsandbytes `Params4bit` / `QuantState` hold exactly these.
- Training FLOPs: Kaplan et al. 2020, "Scaling Laws for Neural Language Models", sec. 2.1
  (forward 2N + 2·n_layer·n_ctx·d_attn per token, backward twice the forward) and
  Narayanan et al. 2021 (activation recomputation adds one forward). With frozen base
  weights (LoRA) the backward computes activation gradients only (one forward's worth)
  plus the adapter's weight gradients (Hu et al. 2021, LoRA, sec. 4.2 on the saving).
- MFU: Chowdhery et al. 2022 (PaLM), appendix B: model FLOPs / (time x peak FLOP/s).
- Activation memory: measured by tracing the real model on the meta device (planner);
  the closed form `activation_bytes_closed_form` is Korthikanti et al. 2022, "Reducing
  Activation Recomputation in Large Transformer Models", eq. 1 (s·b·h·(34 + 5·a·s/h)
  bytes per layer, 16-bit, no flash attention), kept as a cross-check.
- GPU peaks: NVIDIA data sheets, dense (no sparsity) BF16 tensor-core TFLOP/s and HBM
  bandwidth: H100 SXM 989 / 3.35 TB/s, H100 PCIe 756 / 2.0, A100 312 / 2.04 (80 GB) or
  1.56 (40 GB), L40S 362 / 0.864, RTX 4090 165 (FP32 accumulate: 165) / 1.008, A10G 125
  (70 for the A10G in AWS g5 is its sustained; data sheet 125) / 0.6, L4 121 / 0.3,
  T4 65 (FP16; no BF16) / 0.32.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float  # usable HBM as torch reports it (total_memory), GiB
    bf16_tflops: float  # dense peak
    bandwidth_tbs: float  # HBM bandwidth, TB/s


GPUS: dict[str, Gpu] = {
    "h100_sxm": Gpu("NVIDIA H100 SXM 80GB", 79.1, 989.0, 3.35),
    "h200": Gpu("NVIDIA H200 141GB", 140.4, 989.0, 4.8),
    "h100_pcie": Gpu("NVIDIA H100 PCIe 80GB", 79.1, 756.0, 2.0),
    "a100_80gb": Gpu("NVIDIA A100 80GB", 79.1, 312.0, 2.04),
    "a100_40gb": Gpu("NVIDIA A100 40GB", 39.4, 312.0, 1.555),
    "l40s": Gpu("NVIDIA L40S 48GB", 44.5, 362.0, 0.864),
    "rtx_4090": Gpu("NVIDIA GeForce RTX 4090 24GB", 23.6, 165.0, 1.008),
    "a10g": Gpu("NVIDIA A10G 24GB", 22.0, 125.0, 0.6),
    "l4": Gpu("NVIDIA L4 24GB", 22.0, 121.0, 0.3),
    "t4": Gpu("NVIDIA T4 16GB", 14.6, 65.0, 0.32),
}

# Training throughput of a bitsandbytes-quantized base relative to bf16 at the same FLOPs:
# every matmul dequantizes its weight first. Measured on an NVIDIA H200 (bench/bench_plan.py
# --gpu; Llama-3-8B architecture, random weights, LoRA r=8 on all linears, micro-batch
# 4 x 1024 tokens, gradient checkpointing on): bf16 7249 tokens/s, nf4 5884 (0.81),
# int8 1931 (0.27). The step time is FLOPs / (peak x plan.mfu x this factor).
QUANT_THROUGHPUT = {"none": 1.0, "nf4": 0.81, "int8": 0.27}

# Where a measurement showed the memory model to be wrong, the plan says so with every
# estimate it concerns. Same H200 runs: bf16 and nf4 peaks were 0.97x and 0.98x of the
# plan, but int8 was 4.45x with gradient checkpointing (66.2 GiB vs 14.9) and 1.23x
# without; the LLM.int8() outlier threshold does not change it (threshold 0: 86.5 GiB vs
# 85.6 without checkpointing). The excess is inside bitsandbytes' int8 matmul (its inputs
# arrive in fp32 after prepare_model_for_kbit_training) and is not modelled here.
INT8_MEASURED_RATIO = 4.45  # measured / planned peak, int8, checkpointing on (above)
# Within this share of the card's memory a "fits" is inside the plan's own error (bf16 and
# nf4 measured within 3% on the H200): the verdict says so.
TIGHT_MARGIN = 0.05

INT8_TRAINING_CAVEAT = (
    "quant=int8: this memory estimate is a lower bound. On an H200, bitsandbytes int8 LoRA "
    "training of Llama-3-8B (4 x 1024 tokens) peaked at 4.4x the estimate with gradient "
    "checkpointing and 1.2x without (bench/RESULTS.md); bf16 and nf4 were within 3%. "
    "Prefer quant=nf4: smaller and, measured, 3x faster than int8."
)

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}

CUDA_CONTEXT_GIB = 0.6  # CUDA context + cuBLAS/cuDNN workspaces outside torch's allocator
ALLOCATOR_RESERVE = 0.10  # caching-allocator fragmentation over the allocated peak


def int8_bytes(out_features: int, in_features: int) -> float:
    """LLM.int8() linear weight: 1 byte per weight + fp32 SCB per output row."""
    return out_features * in_features + 4 * out_features


def nf4_bytes(numel: int, double_quant: bool, blocksize: int = 64) -> float:
    """QLoRA NF4 weight: 4 bits per weight + absmax per block (fp32, or 8-bit + fp32 per
    256 blocks with double quantization, plus its fp32 offset)."""
    blocks = -(-numel // blocksize)
    constants = blocks * 1 + 4 * -(-blocks // 256) + 4 if double_quant else blocks * 4
    return numel / 2 + constants


def optimizer_bytes_per_param(optim: str) -> float:
    """AdamW keeps two moments per trainable parameter: fp32 (torch), 8-bit in
    bitsandbytes' 8-bit/paged-8-bit AdamW (block-wise, Dettmers et al. 2022), none for SGD."""
    name = optim.lower()
    if "8bit" in name:
        return 2.0 + 2 * 4 / 2048  # two uint8 moments + fp32 absmax per 2048-block
    if name.startswith("sgd"):
        return 0.0
    return 8.0


def shard_factors(sharding: str, world_size: int) -> dict[str, float]:
    """Which state each GPU holds 1/world_size of (ZeRO paper, sec. 5)."""
    w = max(1, world_size)
    if sharding == "ddp" or w == 1:
        return {"weights": 1.0, "grads": 1.0, "optimizer": 1.0}
    if sharding == "zero2":
        return {"weights": 1.0, "grads": 1 / w, "optimizer": 1 / w}
    return {"weights": 1 / w, "grads": 1 / w, "optimizer": 1 / w}  # zero3, fsdp full shard


def train_flops_per_token(
    matmul_params: float,
    trainable_matmul_params: float,
    layers: int,
    context: int,
    attn_dim: int,
    frozen_base: bool,
    recompute: bool,
) -> float:
    """Model FLOPs per token of one training step (Kaplan 2020; Narayanan 2021).

    forward = 2·N + 2·L·s·d_attn. Full fine-tune: backward = 2·forward. Frozen base
    (LoRA): backward = forward (activation gradients) + 4·N_trainable (adapter weight
    gradients, and their activation gradients). Recomputation adds a forward."""
    forward = 2 * matmul_params + 2 * layers * context * attn_dim
    backward = forward + 4 * trainable_matmul_params if frozen_base else 2 * forward
    return forward + backward + (forward if recompute else 0.0)


def forward_flops_per_token(matmul_params: float, layers: int, context: int, attn_dim: int):
    return 2 * matmul_params + 2 * layers * context * attn_dim


def decode_seconds_per_token(weight_bytes: float, kv_bytes: float, bandwidth_tbs: float) -> float:
    """One decoding step is memory-bound: read every weight and the KV cache once
    (roofline; an efficiency of 0.6 for HF generate's kernels is applied by the caller)."""
    return (weight_bytes + kv_bytes) / (bandwidth_tbs * 1e12)


def generation_tokens_per_second(
    weight_bytes: float,
    kv_bytes: float,
    batch: int,
    bandwidth_bytes_per_s: float,
    efficiency: float,
) -> float:
    """Decoding throughput of a memory-bound batch: each step makes `batch` new tokens
    and reads the weights and the KV cache once (medalign/plan/generation.py)."""
    return batch * efficiency * bandwidth_bytes_per_s / (weight_bytes + kv_bytes)


def kv_cache_bytes(
    layers: int, kv_heads: int, head_dim: int, tokens: int, sequences: int, dtype_bytes: int
) -> float:
    """K and V for every layer, KV head and position of every sequence."""
    return 2 * layers * kv_heads * head_dim * tokens * sequences * dtype_bytes


def activation_bytes_closed_form(
    seq: int, batch: int, hidden: int, heads: int, layers: int
) -> float:
    """Korthikanti et al. 2022, eq. 1: 16-bit activations of a GPT layer without flash
    attention, s·b·h·(34 + 5·a·s/h) per layer. A cross-check for the traced figure."""
    return layers * seq * batch * hidden * (34 + 5 * heads * seq / hidden)
