"""Greedy chat-format generation, batched with left padding, with a progress bar: what
generative evaluation, on-policy negatives and the safety judge share."""

from __future__ import annotations

from typing import Any


def progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False)


def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], cfg: Any, desc: str
) -> list[str]:
    """Greedy answers to `prompts` (user turns), `cfg.max_new_tokens` each."""
    import torch

    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    outputs: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    try:
        with progress(len(texts), desc) as bar, torch.no_grad():
            for start in range(0, len(texts), cfg.batch_size):
                batch = tokenizer(
                    texts[start : start + cfg.batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(model.device)
                out = model.generate(
                    **batch,
                    max_new_tokens=cfg.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = out[:, batch["input_ids"].shape[1] :]
                outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
                bar.update(len(new))
    finally:
        tokenizer.padding_side = side
    return outputs
