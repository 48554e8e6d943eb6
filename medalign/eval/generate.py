"""Greedy chat-format generation for what evaluation, on-policy negatives and the safety
judge share; one implementation with stage=generate (`models/inference.py`)."""

from __future__ import annotations

from typing import Any


def progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False)


def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], cfg: Any, desc: str
) -> list[str]:
    """Greedy answers to `prompts` (user turns), `cfg.max_new_tokens` each: the same
    batched generation as stage=generate (models/inference.py), stopping at the end of
    the assistant's turn; in vLLM with eval.generation_backend=vllm."""
    from medalign.config import GenerateConfig
    from medalign.models.inference import chat_completions

    settings = GenerateConfig(  # greedy: temperature and top_p are unused
        input=None,
        output=None,
        batch_size=cfg.batch_size,
        max_new_tokens=cfg.max_new_tokens,
        do_sample=False,
        temperature=1.0,
        top_p=1.0,
        system_prompt=None,
    )
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    backend = cfg.generation_backend  # hf | vllm (the judge: hf, its EvalConfig default)
    return chat_completions(model, tokenizer, conversations, settings, where=desc, backend=backend)
