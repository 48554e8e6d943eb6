"""Log-likelihood scoring of answer choices, the lm-evaluation-harness way, but fast.

Encoding follows lm-eval 0.4.13's HFLM (`TemplateLM._encode_pair`, `HFLM.tok_encode`):
the continuation is the target delimiter (" ") plus the choice; trailing whitespace of
the context moves to the continuation; context+continuation is encoded whole and cut at
the context's length; the tokenizer's own special tokens are used unless `add_bos_token`
says otherwise (so a LLaMA/Mistral tokenizer puts BOS in front of every context); an
empty context is conditioned on the BOS (else EOS) token. A context+continuation longer
than the model's maximum length is cut from the left, as lm-eval does (it keeps the last
`max_length + 1` tokens and feeds all but the last), and counted.

Every choice of a question shares the prompt, so the prompt is encoded once: one forward
pass gives the first token of every choice (" A", " yes") from the next-token
log-probabilities at its last position. Prompts are batched across questions, sorted by
length and left-padded with explicit position ids (pads are masked and shift nothing),
and only the last position's logits are computed (`logits_to_keep=1`): the vocabulary
projection over every position would cost more than the model itself. Choices longer
than one token (" maybe" in many vocabularies) continue from the prompts' KV cache, one
choice at a time, so the prompt is never encoded again. A question cut from the left
(longer than the model) has a different window per choice, as in lm-eval: its choices are
scored as whole prompt+choice sequences.
`score_naive` is the reference: each choice a separate full sequence, one at a time.

    scored = score_choices(model, tokenizer, [(context, ["A", "B", "C", "D"])])
    scored.scores, scored.token_counts, scored.truncated   # per choice, per question
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medalign.models.hf_compat import cache_key

log = logging.getLogger(__name__)

Item = tuple[str, list[str]]  # (context, choices)
Pair = tuple[list[int], list[int]]  # (context ids, continuation ids)
DEFAULT_MAX_LENGTH = 2048  # lm-eval's default when neither config nor tokenizer has one
_TOKENIZER_INFINITY = 1000000000000000019884624838656  # transformers' "no limit"


@dataclass(frozen=True)
class LoglikItem:
    """One question as lm-evaluation-harness scores it: `context` + " " + each choice
    (a Task's `loglik_item`, or the trained prompt's, eval/choice.py)."""

    context: str
    choices: list[str]
    gold: int


@dataclass
class ChoiceScores:
    """Raw per-choice results: everything acc, acc_norm and calibration derive from."""

    scores: list[list[float]]  # summed log-likelihood of each choice's tokens
    token_counts: list[list[int]]  # continuation token count of each choice
    context_tokens: list[int]  # context length in tokens, before any truncation
    truncated: list[bool]  # a choice of the question was cut from the left
    max_length: int  # the model length the sequences were held to

    @property
    def n_truncated(self) -> int:
        return sum(self.truncated)


def _prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's `prefix_token_id`: BOS, else EOS."""
    bos = tokenizer.bos_token_id
    return bos if bos is not None else tokenizer.eos_token_id


def tok_encode(tokenizer: Any, texts: list[str], add_bos_token: bool | None = None) -> list:
    """lm-eval's `HFLM.tok_encode` for each text, in batched tokenizer calls.

    None: the tokenizer's default special tokens; True/False: `add_special_tokens` so set
    (True also guarantees a leading BOS, as lm-eval's `add_bos_token=True` tokenizer load
    does); a text that already starts with the BOS (prefix) token text gets none added.
    """
    prefix = tokenizer.decode(_prefix_token_id(tokenizer))
    groups: dict[bool | None, list[int]] = {}
    for i, text in enumerate(texts):
        special = False if text.startswith(prefix) else add_bos_token
        groups.setdefault(special, []).append(i)
    out: list = [None] * len(texts)
    for special, rows in groups.items():
        kwargs = {} if special is None else {"add_special_tokens": special}
        ids = tokenizer([texts[i] for i in rows], **kwargs)["input_ids"]
        for i, row in zip(rows, ids, strict=True):
            out[i] = list(row)
    bos = tokenizer.bos_token_id
    if add_bos_token and bos is not None:
        for i, row in enumerate(out):
            if not texts[i].startswith(prefix) and (not row or row[0] != bos):
                out[i] = [bos, *row]
    return out


def encode_batch(
    tokenizer: Any,
    items: list[Item],
    add_bos_token: bool | None = None,
    delimiter: str = " ",
) -> list[list[Pair]]:
    """(context ids, continuation ids) for every (question, choice), as lm-eval's
    `_encode_pair` computes them for the request (context, delimiter + choice)."""
    contexts, wholes, where = [], [], []
    empty: list[tuple[int, int, str]] = []
    for q, (context, choices) in enumerate(items):
        for j, choice in enumerate(choices):
            continuation = delimiter + choice
            if context == "":
                empty.append((q, j, continuation))
                continue
            stripped = context.rstrip()
            moved = context[len(stripped) :]  # trailing spaces join the continuation
            contexts.append(stripped)
            wholes.append(stripped + moved + continuation)
            where.append((q, j))
    out: list[list[Pair | None]] = [[None] * len(choices) for _, choices in items]
    unique = list(dict.fromkeys(contexts))  # one encoding per distinct context
    ctx_ids = dict(zip(unique, tok_encode(tokenizer, unique, add_bos_token), strict=True))
    for (q, j), context, whole in zip(
        where, contexts, tok_encode(tokenizer, wholes, add_bos_token), strict=True
    ):
        ctx = ctx_ids[context]
        out[q][j] = (ctx, whole[len(ctx) :])
    prefix = _prefix_token_id(tokenizer)
    for (q, j, _), cont in zip(
        empty, tok_encode(tokenizer, [c for *_, c in empty], add_bos_token=False), strict=True
    ):  # lm-eval: condition on the prefix token, unless the continuation starts with it
        out[q][j] = ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    return out  # type: ignore[return-value]


def encode(tokenizer: Any, context: str, choice: str, add_bos_token: bool | None = None) -> Pair:
    """(context ids, continuation ids) of one choice, as lm-eval splits them."""
    return encode_batch(tokenizer, [(context, [choice])], add_bos_token)[0][0]


def model_max_length(model: Any, tokenizer: Any = None) -> int:
    """lm-eval's `resolve_max_length`: the model config's length, else the tokenizer's."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    value = getattr(tokenizer, "model_max_length", None)
    if value is not None and value != _TOKENIZER_INFINITY:
        return int(value)
    return DEFAULT_MAX_LENGTH


def _window(ctx: list[int], cont: list[int], max_length: int) -> tuple[list[int], int]:
    """lm-eval's left truncation: (the sequence fed to the model, where the continuation's
    first prediction sits), from the last `max_length + 1` tokens minus the last one."""
    seq = (ctx + cont)[-(max_length + 1) :]
    return seq[:-1], len(seq) - len(cont) - 1


def score_naive(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    max_length: int | None = None,
    add_bos_token: bool | None = None,
) -> list[list[float]]:
    """Sum of log-probabilities of each choice's tokens; one forward per choice."""
    import torch

    limit = max_length or model_max_length(model, tokenizer)
    out = []
    with torch.no_grad():
        for (_, choices), enc in zip(
            items, encode_batch(tokenizer, items, add_bos_token), strict=True
        ):
            scores = []
            for _, (ctx, cont) in zip(choices, enc, strict=True):
                inp, first = _window(ctx, cont, limit)
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([inp])).logits[0], -1)
                positions = range(first, first + len(cont))
                scores.append(
                    sum(float(logprobs[p, t]) for p, t in zip(positions, cont, strict=True))
                )
            out.append(scores)
    return out


def score_choices(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    max_length: int | None = None,
    add_bos_token: bool | None = None,
) -> ChoiceScores:
    """Per-choice log-likelihoods (lm-eval's numbers), token counts and truncation flags.

    `max_length` defaults to the model's (lm-eval's rule); `add_bos_token=None` uses the
    tokenizer's default special tokens, as lm-eval does.
    """
    import torch

    limit = max_length or model_max_length(model, tokenizer)
    encoded = encode_batch(tokenizer, items, add_bos_token)
    truncated = [any(len(c) + len(t) > limit + 1 for c, t in enc) for enc in encoded]
    results: list[list[float] | None] = [None] * len(items)
    single = [all(len(cont) == 1 for _, cont in enc) for enc in encoded]
    # a cut multi-token question has a window per choice: the sequence path (lm-eval's)
    shared = [i for i, enc in enumerate(encoded) if enc and (single[i] or not truncated[i])]
    order = sorted(shared, key=lambda i: len(encoded[i][0][0]))
    pad = tokenizer.pad_token_id or 0
    device = getattr(model, "device", "cpu")
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            contexts = [encoded[i][0][0][-limit:] for i in batch]  # = lm-eval's window
            ids, mask = _left_padded(contexts, pad)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # pads do not shift positions
            continued = not all(single[i] for i in batch)
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                logits_to_keep=1,
                use_cache=continued,
            )
            logprobs = torch.log_softmax(out.logits[:, -1].float(), -1)
            for row, i in enumerate(batch):
                results[i] = [float(logprobs[row, cont[0]]) for _, cont in encoded[i]]
            if continued:
                conts = [[cont for _, cont in encoded[i]] for i in batch]
                cache = getattr(out, cache_key())  # `cache` (5.24) or `past_key_values` (5.17)
                _add_continuations(model, cache, mask, conts, batch, results, pad)
            if progress:
                progress(len(batch))
        for i, enc in enumerate(encoded):
            if results[i] is None:
                results[i] = _score_sequences(model, enc, pad, limit)
                if progress:
                    progress(1)
    if any(truncated):
        log.warning(
            "%d of %d questions are longer than the model's %d tokens: cut from the left, "
            "as lm-eval does",
            sum(truncated),
            len(items),
            limit,
        )
    return ChoiceScores(
        scores=[r for r in results if r is not None],
        token_counts=[[len(cont) for _, cont in enc] for enc in encoded],
        context_tokens=[len(enc[0][0]) if enc else 0 for enc in encoded],
        truncated=truncated,
        max_length=limit,
    )


def score_fast(
    model: Any,
    tokenizer: Any,
    items: list[Item],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    max_length: int | None = None,
    add_bos_token: bool | None = None,
) -> list[list[float]]:
    """Same numbers as `score_naive`, one prompt pass per question, batched."""
    return score_choices(
        model, tokenizer, items, batch_size, progress, max_length, add_bos_token
    ).scores


def _left_padded(contexts: list[list[int]], pad: int) -> tuple[Any, Any]:
    """(ids, mask) of `contexts` left-padded to one width: every prompt ends at -1."""
    import torch

    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), pad)
    mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for row, ctx in enumerate(contexts):
        ids[row, width - len(ctx) :] = torch.tensor(ctx)
        mask[row, width - len(ctx) :] = 1
    return ids, mask


def _add_continuations(
    model: Any,
    cache: Any,
    mask: Any,
    conts: list[list[list[int]]],
    batch: list[int],
    results: list[list[float] | None],
    pad: int,
) -> None:
    """Add the log-probabilities of every continuation token after the first, feeding
    the choices one at a time after the batch's cached prompts (`cache`, cut back to the
    prompts after each choice): the prompt is encoded once per question, not per choice."""
    import torch

    device = getattr(model, "device", "cpu")
    width, lengths = mask.shape[1], mask.sum(-1, keepdim=True)
    for j in range(max(len(c) for c in conts)):
        rows = [row for row, c in enumerate(conts) if j < len(c) and len(c[j]) > 1]
        if not rows:
            continue
        steps = max(len(conts[row][j]) for row in rows) - 1
        feed = torch.full((len(conts), steps), pad)
        fed = torch.zeros((len(conts), steps), dtype=torch.long)
        for row in rows:
            tokens = conts[row][j][:-1]
            feed[row, : len(tokens)] = torch.tensor(tokens)
            fed[row, : len(tokens)] = 1
        if not _rolled_back(cache, width):  # a cache that cannot rewind (sliding window)
            for row in range(len(conts)):
                results[batch[row]] = None  # rescored as whole sequences
            return
        logits = model(
            input_ids=feed.to(device),
            attention_mask=torch.cat([mask, fed], -1).to(device),
            position_ids=(lengths + torch.arange(steps)).to(device),
            **{cache_key(): cache},  # models/hf_compat.py: `cache=` in 5.24, not in 5.17
            use_cache=True,
        ).logits
        logprobs = torch.log_softmax(logits.float(), -1)
        for row in rows:
            targets = conts[row][j][1:]
            score = results[batch[row]]
            assert score is not None
            score[j] += sum(float(logprobs[row, p, t]) for p, t in enumerate(targets))


def _rolled_back(cache: Any, width: int) -> bool:
    """Cut `cache` back to its first `width` positions; False when it cannot be."""
    extra = cache.get_seq_length() - width
    try:
        if extra > 0:
            cache.crop(-extra)
    except (RuntimeError, ValueError):
        return False
    return cache.get_seq_length() == width


def _score_sequences(model: Any, enc: list[Pair], pad: int, limit: int) -> list[float]:
    """All choices of one question as one right-padded batch of prompt+choice sequences."""
    import torch

    windows = [_window(ctx, cont, limit) for ctx, cont in enc]
    width = max(len(seq) for seq, _ in windows)
    ids = torch.full((len(windows), width), pad)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, (seq, _) in enumerate(windows):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    device = getattr(model, "device", "cpu")
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    logprobs = torch.log_softmax(logits.float(), -1)
    scores = []
    for row, ((_, first), (_, cont)) in enumerate(zip(windows, enc, strict=True)):
        positions = range(first, first + len(cont))
        scores.append(sum(float(logprobs[row, p, t]) for p, t in zip(positions, cont, strict=True)))
    return scores
