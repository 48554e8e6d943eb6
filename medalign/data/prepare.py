"""Records -> the tokenized dataset an SFT stage trains on: from the cache, or tokenized
once (in parallel) and cached; with the truncation statistics of that same pass.

    from medalign.data.prepare import prepare_sft
    prepared = prepare_sft(cfg, data.parts, tokenizer, sft_args)
    prepared.dataset, prepared.stats, prepared.cache_key, prepared.hit

Called by the SFT stage before the model loads, so a `trainer.max_length` too short for
the data is refused in seconds, with the number of rows TRL would drop and the length
that keeps them all (TRL itself would drop them silently, and stop with `num_samples=0`
when none is left).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from medalign.config import RunConfig
from medalign.data.records import LoadedData
from medalign.data.tokenize import TokenStats, default_num_proc, supported, tokenize_sft
from medalign.errors import MedalignError

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    dataset: Any  # tokenized (input_ids, labels), or the raw rows when TRL must prepare them
    stats: TokenStats | None
    tokenized: bool  # True: hand TRL the dataset with skip_prepare_dataset
    cache_key: str | None = None
    hit: bool = False
    seconds: float = 0.0

    def manifest(self) -> dict[str, Any]:
        """The `data` fields of manifest.json this preparation adds."""
        out: dict[str, Any] = {"tokenized_cache": {"key": self.cache_key, "hit": self.hit}}
        out["preprocess_s"] = round(self.seconds, 3)
        if self.stats is not None:
            s = self.stats
            out.update(truncated=s.truncated, dropped=s.dropped, tokens=s.tokens)
            out.update(longest=s.longest, max_length_needed=s.needed)
        return out


def num_proc(cfg: RunConfig) -> int:
    """`preprocess.num_proc`, or every core this process may use."""
    n = cfg.preprocess.num_proc
    if n is None:
        return default_num_proc()
    if not isinstance(n, int) or n < 1:
        raise MedalignError(
            f"config preprocess.num_proc: expected an integer >= 1 or null, got {n!r}"
        )
    return n


def prepare_sft(
    cfg: RunConfig,
    parts: list[LoadedData],
    tokenizer: Any,
    args: Any,
    fingerprint: str | None = None,
) -> Prepared:
    """The training set of `parts`, tokenized as `args` (the run's SFTConfig) says.
    `fingerprint`: the records' (TrainingData.summary()'s), when already computed."""
    from medalign.data import token_cache
    from medalign.data.formatting import sft_rows

    started = time.perf_counter()
    mixed = len(parts) > 1
    reason = supported(args)
    if reason:
        log.info("TRL prepares the training set itself (%s): no truncation counts", reason)
        rows = sft_rows([(p.records, p.config) for p in parts])
        return Prepared(_dataset(rows, mixed, cfg.seed), None, tokenized=False)
    fingerprint = fingerprint or token_cache.records_fingerprint(parts)
    key = _key(cfg, [p.config for p in parts], fingerprint, tokenizer, args)
    found = _from_cache(cfg, key, args)
    if found is not None:
        return found
    workers = num_proc(cfg)
    rows = sft_rows([(p.records, p.config) for p in parts])
    dataset, stats = tokenize_sft(_dataset(rows, mixed, cfg.seed), tokenizer, args, workers)
    prepared = _checked(Prepared(dataset, stats, True, key, False))
    if cfg.preprocess.cache:
        root = token_cache.cache_dir(cfg.preprocess.cache_dir)
        meta = {"stats": stats.as_dict(), "rows": len(rows)}
        if token_cache.store_if_writable(root, key, dataset, meta):
            log.info("tokenized %d rows on %d process(es); cached as %s", len(rows), workers, key)
    prepared.seconds = time.perf_counter() - started
    return _shuffled(prepared, args)


def cached_sft(
    cfg: RunConfig, configs: list[Any], fingerprint: str, tokenizer: Any, args: Any
) -> Prepared | None:
    """The tokenized training set from the cache, or None. Needs no row: only the
    records' fingerprint and the datasets' settings (a remembered load's)."""
    if supported(args):
        return None
    return _from_cache(cfg, _key(cfg, configs, fingerprint, tokenizer, args), args)


def _from_cache(cfg: RunConfig, key: str, args: Any) -> Prepared | None:
    from medalign.data import token_cache

    if not cfg.preprocess.cache:
        return None
    started = time.perf_counter()
    root = token_cache.cache_dir(cfg.preprocess.cache_dir)
    found = token_cache.load(root, key)
    if found is None:
        return None
    dataset, meta = found
    stats = TokenStats(**meta["stats"])
    log.info("tokenized cache hit %s (%d rows, %s)", key, stats.rows, root / key)
    prepared = Prepared(dataset, stats, True, key, True, time.perf_counter() - started)
    return _shuffled(_checked(prepared), args)


def _key(cfg: RunConfig, configs: list[Any], fingerprint: str, tokenizer: Any, args: Any) -> str:
    from medalign.data import token_cache

    mixed = len(configs) > 1
    digest = token_cache.data_digest(fingerprint, configs, cfg.seed if mixed else None)
    return token_cache.cache_key(digest, tokenizer, args)[0]


def _dataset(rows: list[dict], mixed: bool, seed: int) -> Any:
    from datasets import Dataset

    dataset = Dataset.from_list(rows)
    return dataset.shuffle(seed=seed) if mixed else dataset


def _checked(prepared: Prepared) -> Prepared:
    """Refuse a max_length that would make TRL drop rows; log the truncated ones."""
    s = prepared.stats
    assert s is not None
    if s.dropped:
        raise MedalignError(
            f"trainer.max_length={s.max_length}: {s.dropped} of {s.rows} training examples "
            f"would keep no answer token after truncation (their prompt fills max_length) and "
            f"TRL would drop them; the longest prompt is {s.needed - 1} tokens, the longest "
            f"example {s.longest}: set trainer.max_length={max(s.needed, 1)} or more "
            f"({s.longest} keeps every example whole)"
        )
    if s.truncated:
        log.warning(
            "%d of %d examples are longer than trainer.max_length=%d tokens and are truncated "
            "(the longest is %d tokens)",
            s.truncated,
            s.rows,
            s.max_length,
            s.longest,
        )
    return prepared


def _shuffled(prepared: Prepared, args: Any) -> Prepared:
    """SFTConfig.shuffle_dataset, as TRL applies it after preparing (packing: before)."""
    if args.shuffle_dataset and not args.packing:
        prepared.dataset = prepared.dataset.shuffle(seed=args.seed)
    return prepared
