"""Generation in vLLM for evaluation's generative tasks and stage=generate
(`eval.generation_backend=vllm`; needs CUDA and the vllm package, checked at start-up by
models/switches.py).

    answers = vllm_completions(model, tokenizer, rendered_prompts, settings)

Why: HF `generate` decodes a batch in lockstep and re-reads the weights for every token of
every padded row; vLLM's paged attention and continuous batching keep the GPU busy, which
is what RadQA and MedSafetyBench at 8B need. The model in memory is handed over as files:
its base directory (the one it was loaded from, or saved once to a temporary folder) and,
for a LoRA model, its adapter saved beside it and served through `LoRARequest`, so the
answers are those of exactly the model being evaluated. Greedy by default, the same
end-of-turn stops as the HF path (models/inference.generation_kwargs passes them).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
GPU_SHARE = 0.4  # vLLM's share of the GPU: the evaluated HF model stays loaded beside it
_ENGINES: dict[tuple[str, bool], Any] = {}  # one engine per base directory in a process
_WORK: list[Any] = []  # one temporary folder per process, removed at exit
_ADAPTERS = iter(range(1, 1 << 30))  # vLLM caches a LoRA by its id: a new one per hand-over


def vllm_completions(
    model: Any, tokenizer: Any, texts: list[str], settings: Any, stops: list[int]
) -> list[str]:
    """The completion of each rendered prompt in `texts`, in order, stripped; `stops`: the
    end-of-turn token ids the HF path stops at."""
    from vllm import SamplingParams

    if not _WORK:
        _WORK.append(tempfile.TemporaryDirectory(prefix="medalign-vllm-"))
    number = next(_ADAPTERS)
    base, adapter = model_files(model, tokenizer, Path(_WORK[0].name), number)
    engine = _engine(base, lora=adapter is not None)
    params = SamplingParams(
        max_tokens=settings.max_new_tokens,
        temperature=settings.temperature if settings.do_sample else 0.0,
        top_p=settings.top_p if settings.do_sample else 1.0,
        stop_token_ids=list(stops),
        skip_special_tokens=True,
    )
    request = None
    if adapter is not None:
        from vllm.lora.request import LoRARequest

        request = LoRARequest(f"evaluated-{number}", number, str(adapter))
    outputs = engine.generate(texts, params, lora_request=request, use_tqdm=True)
    return [out.outputs[0].text.strip() for out in outputs]


def model_files(model: Any, tokenizer: Any, work: Path, number: int = 1) -> tuple[str, Path | None]:
    """(base model directory, adapter directory or None) that reproduce `model`."""
    adapter = None
    inner = model
    if hasattr(model, "peft_config"):  # a PeftModel: its adapter as files, its base as loaded
        adapter = work / f"adapter-{number}"
        model.save_pretrained(adapter)
        inner = model.get_base_model()
    source = getattr(inner.config, "_name_or_path", "") or ""
    if not Path(source, "config.json").is_file():  # built in memory: save it once
        source = str(work / "base")
        inner.save_pretrained(source)
        tokenizer.save_pretrained(source)
    return source, adapter


def _engine(base: str, lora: bool) -> Any:
    from vllm import LLM

    key = (base, lora)
    if key not in _ENGINES:
        log.info("vLLM engine on %s (LoRA: %s, %.0f%% of the GPU)", base, lora, GPU_SHARE * 100)
        _ENGINES[key] = LLM(
            model=base, enable_lora=lora, gpu_memory_utilization=GPU_SHARE, max_lora_rank=64
        )
    return _ENGINES[key]
