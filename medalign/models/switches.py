"""Start-up checks of the switches a GPU user expects: one clear line, not a traceback.

    from medalign.models.switches import check_switches
    check_switches(cfg)      # before any model loads (stage=plan calls it)

- model.attn_implementation=flash_attention_2 needs CUDA and the flash-attn package;
- model.liger=true (Liger kernels: fused RMSNorm, SwiGLU, RoPE, linear + cross-entropy,
  TRL/transformers' `use_liger_kernel`) needs CUDA and the liger-kernel package;
- rl.use_vllm=true (TRL generation in vLLM, rl.vllm_mode colocate | server) needs CUDA
  and the vllm package, in the range trl's [vllm] extra declares (models/vllm_range.py),
  and only GRPO/RLOO generate (rl.vllm_gpu_memory_utilization's range: checks.py; a
  colocated plan that does not fit: plan/colocate.py);
- eval.generation_backend=vllm (the generative tasks in vLLM) needs CUDA and vllm, and
  belongs to medalign's own scorer (eval.backend=builtin): lm-eval generates itself.

Each check asks the environment (importlib, torch.cuda) without importing the package,
so it costs milliseconds.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from medalign.errors import MedalignError
from medalign.models.vllm_range import check_trl_vllm


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _need(switch: str, package: str, module: str, cuda: bool | None = None, plan=False) -> None:
    if plan:  # stage=plan: the run is planned for plan.gpu, not run here
        return
    missing = []
    if not (_cuda() if cuda is None else cuda):
        missing.append("a CUDA GPU (torch.cuda.is_available() is False)")
    if not _has(module):
        missing.append(f"the {package} package (pip install {package})")
    if missing:
        raise MedalignError(f"{switch} needs {' and '.join(missing)}; none here.")


def check_switches(cfg: Any, cuda: bool | None = None, planning: bool | None = None) -> None:
    """Raise MedalignError naming what is missing for each switch that is on.
    `cuda` overrides the detection (tests). A stage that only plans (stage=plan: its
    StageSpec's `plans_only`) plans a GPU run from any machine: it needs neither CUDA nor
    the packages, only settings that make sense. `planning`: None reads the spec of
    cfg.stage.kind."""
    if planning is None:
        from medalign.registry import get

        planning = get("stage", cfg.stage.kind).plans_only
    model, plan = cfg.model, planning
    if model.attn_implementation == "flash_attention_2":
        _need("model.attn_implementation=flash_attention_2", "flash-attn", "flash_attn", cuda, plan)
    if getattr(model, "liger", False):
        _need("model.liger=true (Liger kernels)", "liger-kernel", "liger_kernel", cuda, plan)
    rl = cfg.rl
    if rl.use_vllm:
        if rl.algorithm not in ("grpo", "rloo"):
            raise MedalignError(
                f"rl.use_vllm=true: only GRPO and RLOO generate; rl.algorithm={rl.algorithm}"
            )
        _need(f"rl.use_vllm=true (vllm_mode={rl.vllm_mode})", "vllm", "vllm", cuda, plan)
        if not plan:  # the installed vllm within trl's [vllm] extra (models/vllm_range.py)
            check_trl_vllm()
    ev = cfg.eval
    if ev.generation_backend == "vllm":
        if ev.backend == "lm_eval":
            raise MedalignError(
                "eval.generation_backend=vllm is medalign's scorer's (eval.backend=builtin); "
                "with eval.backend=lm_eval, lm-eval generates: use its vllm model type "
                "(lm_eval --model vllm) or eval.generation_backend=hf"
            )
        _need("eval.generation_backend=vllm", "vllm", "vllm", cuda, plan)
