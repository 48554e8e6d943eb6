"""Log-likelihood scoring of answer choices, the lm-evaluation-harness way, but fast.

Every choice of a question shares the prompt, and the choices of these benchmarks are
single tokens (" A", " yes"), so one forward pass over the prompt scores them all: the
next-token log-probabilities at its last position. Prompts are batched across questions,
sorted by length and left-padded with explicit position ids (pads are masked and shift
nothing), and only the last position's logits are computed (`logits_to_keep=1`): the
vocabulary projection over every position would cost more than the model itself.
Choices that span several tokens fall back to scoring prompt+choice sequences, all
choices of a question in one batch.
`score_naive` is the reference: each choice a separate full sequence, one at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Item = tuple[str, list[str]]  # (context, choices)


def encode(tokenizer: Any, context: str, choice: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval splits them: encode the whole, then cut."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + " " + choice, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx) :]


def encode_batch(tokenizer: Any, items: list[Item]) -> list[list[tuple[list[int], list[int]]]]:
    """`encode` for every (question, choice), in two batched tokenizer calls."""
    contexts = tokenizer([c for c, _ in items], add_special_tokens=False)["input_ids"]
    wholes = tokenizer(
        [c + " " + ch for c, choices in items for ch in choices], add_special_tokens=False
    )["input_ids"]
    out, k = [], 0
    for (_, choices), ctx in zip(items, contexts, strict=True):
        out.append([(ctx, wholes[k + j][len(ctx) :]) for j in range(len(choices))])
        k += len(choices)
    return out


def score_naive(model: Any, tokenizer: Any, items: list[Item]) -> list[list[float]]:
    """Sum of log-probabilities of each choice's tokens; one forward per choice."""
    import torch

    out = []
    with torch.no_grad():
        for context, choices in items:
            scores = []
            for choice in choices:
                ctx, cont = encode(tokenizer, context, choice)
                ids = torch.tensor([ctx + cont])
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
                positions = range(len(ctx) - 1, len(ctx) + len(cont) - 1)
                scores.append(
                    sum(float(logprobs[p, t]) for p, t in zip(positions, cont, strict=True))
                )
            out.append(scores)
    return out


def score_fast(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Same numbers as `score_naive`, one prompt pass per question, batched."""
    import torch

    encoded = encode_batch(tokenizer, items)
    results: list[list[float] | None] = [None] * len(items)
    single = [i for i, enc in enumerate(encoded) if all(len(cont) == 1 for _, cont in enc)]
    single_set = set(single)
    order = sorted(single, key=lambda i: len(encoded[i][0][0]))
    pad = tokenizer.pad_token_id or 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            contexts = [encoded[i][0][0] for i in batch]
            width = max(len(c) for c in contexts)
            ids = torch.full((len(batch), width), pad)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ctx in enumerate(contexts):  # left padding: every prompt ends at -1
                ids[row, width - len(ctx) :] = torch.tensor(ctx)
                mask[row, width - len(ctx) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # pads do not shift positions
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1
            ).logits
            logprobs = torch.log_softmax(logits[:, -1].float(), -1)
            for row, i in enumerate(batch):
                results[i] = [float(logprobs[row, cont[0]]) for _, cont in encoded[i]]
            if progress:
                progress(len(batch))
        for i, enc in enumerate(encoded):
            if i not in single_set:
                results[i] = _score_sequences(model, enc, pad)
                if progress:
                    progress(1)
    return [r for r in results if r is not None]


def _score_sequences(model: Any, enc: list[tuple[list[int], list[int]]], pad: int) -> list[float]:
    """All choices of one question as one right-padded batch of prompt+choice sequences."""
    import torch

    seqs = [ctx + cont for ctx, cont in enc]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    scores = []
    for row, (ctx, cont) in enumerate(enc):
        positions = range(len(ctx) - 1, len(ctx) + len(cont) - 1)
        scores.append(sum(float(logprobs[row, p, t]) for p, t in zip(positions, cont, strict=True)))
    return scores


@dataclass
class ChoiceScores:
    """Per question: each choice's summed log-likelihood and token count, and whether
    the prompt was longer than the model's context."""

    scores: list[list[float]]
    token_counts: list[list[int]]
    truncated: list[bool]


def score_choices(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> ChoiceScores:
    """`score_fast` plus what a report needs to re-derive every metric."""
    encoded = encode_batch(tokenizer, items)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return ChoiceScores(
        scores=score_fast(model, tokenizer, items, batch_size, progress),
        token_counts=[[len(cont) for _, cont in enc] for enc in encoded],
        truncated=[bool(limit) and max(len(c) + len(k) for c, k in enc) > limit for enc in encoded],
    )
