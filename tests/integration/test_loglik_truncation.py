"""Prompts longer than the model's context are cut from the left, as lm-eval 0.4.13 does,
counted, and the raw per-choice log-likelihoods and token counts are returned (item 11)."""

from __future__ import annotations

import pytest

from medalign.config import ModelConfig, QuantConfig
from medalign.data.loading import load_records
from medalign.eval.loglik import encode_batch, score_choices, score_fast, score_naive
from medalign.models.load import load_causal_lm, load_tokenizer, model_source
from tests.conftest import dataset_cfg, default, loglik_pairs, shared_file

SHORT = 48  # tokens: every real MedQA/MedMCQA prompt is longer than this


@pytest.fixture(scope="module")
def tiny():
    source = model_source(default(ModelConfig))
    model = load_causal_lm(default(ModelConfig), default(QuantConfig), source).eval()
    return model, load_tokenizer(default(ModelConfig), source)


def _items() -> list[tuple[str, list[str]]]:
    medqa = shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    records = load_records(dataset_cfg("medqa", path=str(medqa), options=4)).records[:2]
    items = loglik_pairs("medqa", records)
    return [
        *items,
        ("Question: Which drug?\nAnswer:", ["ethosuximide", "carbamazepine twice daily"]),
        (items[0][0], ["ethosuximide", "carbamazepine twice daily"]),  # long and multi-token
    ]


def test_left_truncation_reads_the_models_max_length_and_is_counted(tiny) -> None:
    model, tokenizer = tiny
    items = _items()
    full = score_choices(model, tokenizer, items[:3], batch_size=3)
    assert full.max_length == model.config.max_position_embeddings
    assert full.n_truncated == 0
    model.config.max_position_embeddings = SHORT
    try:
        cut = score_choices(model, tokenizer, items, batch_size=3)
        fast = score_fast(model, tokenizer, items, batch_size=2)
        naive = score_naive(model, tokenizer, items)
    finally:
        model.config.max_position_embeddings = full.max_length
    assert cut.max_length == SHORT
    assert cut.truncated == [True, True, False, True] and cut.n_truncated == 3
    encoded = encode_batch(tokenizer, items)
    assert cut.token_counts == [[len(c) for _, c in enc] for enc in encoded]
    assert cut.context_tokens == [len(enc[0][0]) for enc in encoded]
    for c, f, n in zip(cut.scores, fast, naive, strict=True):
        assert c == pytest.approx(f, abs=1e-5) and c == pytest.approx(n, abs=1e-4)
    assert cut.scores[2] == pytest.approx(full.scores[2], abs=1e-5)  # short: untouched
    for c, whole in zip(cut.scores[:2], full.scores[:2], strict=True):
        assert c != pytest.approx(whole, abs=1e-3)  # long: the cut changed the numbers


def test_truncated_scores_equal_lm_eval(tiny) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval not installed (the `bench` extra)")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = tiny
    items = _items()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, max_length=SHORT)
    requests = [
        Instance("loglikelihood", doc={}, arguments=(ctx, " " + c), idx=i)
        for ctx, choices in items
        for i, c in enumerate(choices)
    ]
    theirs = iter(ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True))
    ours = score_choices(model, tokenizer, items, batch_size=3, max_length=SHORT)
    for scores in ours.scores:
        assert scores == pytest.approx([next(theirs) for _ in scores], abs=1e-4)
