"""One tokenization pass for SFT: the dataset TRL trains on, and its length statistics.

    from medalign.data.tokenize import tokenize_sft
    tokenized, stats = tokenize_sft(prompt_completion_dataset, tokenizer, args, num_proc=2)
    trainer = SFTTrainer(..., train_dataset=tokenized, args=args)   # args skip TRL's preparation

TRL's `SFTTrainer` tokenizes conversational prompt/completion rows one at a time (the chat
template on the prompt, then on prompt+completion; the loss mask where the two diverge),
builds `labels`, truncates to `max_length` and silently drops rows left with no answer
token, in five passes over the data and without telling how many rows it truncated or
dropped. This module does the same in one batched pass (`Dataset.map(batched=True,
num_proc=...)`, the tokenizer's batch encoding), keeps each row's full and prompt length,
and hands TRL the finished `input_ids`/`labels` with `dataset_kwargs.skip_prepare_dataset`.
The statistics (rows truncated, rows TRL would drop, tokens trained on, the length needed)
come from that same pass. `tests/unit/test_tokenize.py` checks the ids and labels against
TRL's own preparation, so a TRL change that this module does not follow fails a test.
Packing uses TRL's own `pack_dataset`.
"""

from __future__ import annotations

import gc
import os
from dataclasses import asdict, dataclass
from typing import Any

TOKEN_COLUMNS = ["input_ids", "labels"]
IGNORE = -100


@dataclass
class TokenStats:
    """What the manifest and the log say about the tokenized training rows."""

    rows: int  # rows tokenized
    truncated: int  # longer than max_length: cut to it
    dropped: int  # left without any answer token after the cut: TRL would drop them
    tokens: int  # tokens trained on (after truncation)
    longest: int  # the longest prompt+answer, in tokens
    needed: int  # the smallest max_length that drops no row (longest prompt + 1)
    max_length: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_num_proc() -> int:
    """Processes for preprocessing: the cores this process may use."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def _keep(max_length: int | None, mode: str) -> slice:
    if max_length is None:
        return slice(None)
    return slice(-max_length, None) if mode == "keep_end" else slice(None, max_length)


def _map(dataset: Any, tokenizer: Any, keep: slice, completion_only: bool, workers: int) -> Any:
    return dataset.map(
        _tokenize_batch,
        batched=True,
        batch_size=1000,
        num_proc=workers if workers > 1 else None,
        remove_columns=dataset.column_names,
        fn_kwargs={
            "tokenizer": tokenizer,
            "chat_template": None,  # TRL's own choice unless assistant_only_loss (not here)
            "keep": keep,
            "completion_only_loss": completion_only,
        },
        desc="Tokenizing (one pass: ids, labels, lengths)",
    )


def _tokenize_batch(
    batch: dict[str, list],
    tokenizer: Any,
    chat_template: str | None,
    keep: slice,
    completion_only_loss: bool,
) -> dict[str, list]:
    """TRL's prompt-completion tokenization (sft_trainer `tokenize_fn` + `build_labels` +
    `truncate`), on a whole batch: one batch encoding per column instead of one per row."""
    kwargs = {"tokenize": True, "return_dict": True, "chat_template": chat_template}
    prompts = batch["prompt"]
    fulls = [p + c for p, c in zip(prompts, batch["completion"], strict=True)]
    prompt_ids = tokenizer.apply_chat_template(prompts, add_generation_prompt=True, **kwargs)
    full_ids = tokenizer.apply_chat_template(fulls, **kwargs)["input_ids"]
    out: dict[str, list] = {"input_ids": [], "labels": [], "length": [], "prompt_length": []}
    for prompt, ids in zip(prompt_ids["input_ids"], full_ids, strict=True):
        start = _common_prefix(prompt, ids)
        labels = [IGNORE] * start + ids[start:] if completion_only_loss else list(ids)
        out["input_ids"].append(ids[keep])
        out["labels"].append(labels[keep])
        out["length"].append(len(ids))
        out["prompt_length"].append(start)
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def supported(args: Any) -> str | None:
    """Why this module cannot prepare data for `args` (TRL then does it), or None."""
    if args.assistant_only_loss:
        return "assistant_only_loss needs TRL's generation-marker template"
    if args.chat_template_path:
        return "chat_template_path is applied by TRL"
    if args.truncation_mode not in ("keep_start", "keep_end"):
        return f"truncation_mode={args.truncation_mode!r}"
    return None


def tokenize_sft(
    dataset: Any, tokenizer: Any, args: Any, num_proc: int = 1
) -> tuple[Any, TokenStats]:
    """`dataset` (conversational prompt/completion) -> what SFTTrainer trains on, and the
    statistics of the same pass. `args` is the run's `SFTConfig` (max_length, packing,
    truncation mode, completion-only loss). Rows are not dropped here: the caller decides
    (the SFT stage refuses a max_length that would drop any)."""
    import numpy as np

    packing = bool(args.packing)
    completion_only = args.completion_only_loss is not False
    keep = slice(None) if packing else _keep(args.max_length, args.truncation_mode)
    workers = max(1, min(num_proc, len(dataset) // 1000 or 1))
    if workers > 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked workers share none
        # The parent's Python objects (records, rendered rows) reach the forked workers
        # copy-on-write, until a worker's garbage collector walks them and so copies every
        # page they sit on. Frozen objects are never walked: that is gc.freeze's purpose.
        gc.freeze()
    try:
        tokenized = _map(dataset, tokenizer, keep, completion_only, workers)
    finally:
        gc.unfreeze()
    lengths = np.asarray(tokenized.data.column("length").to_numpy(), dtype=np.int64)
    prompts = np.asarray(tokenized.data.column("prompt_length").to_numpy(), dtype=np.int64)
    limit = args.max_length
    if not completion_only:
        prompts = np.zeros_like(prompts)  # every token is trained on
    if limit is None:
        truncated, tokens = 0, int(lengths.sum())
    else:
        truncated, tokens = int((lengths > limit).sum()), int(np.minimum(lengths, limit).sum())
    if packing or limit is None:
        dropped = 0  # TRL drops rows only when it truncates them itself (not when packing)
    elif args.truncation_mode == "keep_end":
        dropped = int((lengths <= prompts).sum())  # the answer is at the end: kept if any
    else:
        dropped = int((prompts >= np.minimum(lengths, limit)).sum())
    stats = TokenStats(
        rows=len(lengths),
        truncated=truncated,
        dropped=dropped,
        tokens=tokens,
        longest=int(lengths.max()) if len(lengths) else 0,
        needed=int(prompts.max()) + 1 if len(prompts) else 1,
        max_length=limit,
    )
    tokenized = tokenized.select_columns(TOKEN_COLUMNS)
    if packing:
        from trl.data_utils import pack_dataset

        if args.shuffle_dataset:
            tokenized = tokenized.shuffle(seed=args.seed)
        map_kwargs = {"num_proc": workers if workers > 1 else None, "desc": "Packing"}
        tokenized = pack_dataset(tokenized, args.max_length, args.packing_strategy, map_kwargs)
    return tokenized, stats
