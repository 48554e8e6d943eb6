"""Context/continuation encoding follows lm-evaluation-harness 0.4.13's HFLM exactly
(BOS rule, `add_bos_token`, trailing-whitespace move, empty context), on real rows.

lm-eval's own `HFLM._encode_pair` is the reference when `lm_eval` is installed (the
`bench` extra); those comparisons skip with a reason otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medalign.config import ModelConfig
from medalign.data.loading import load_records
from medalign.eval.loglik import encode, encode_batch
from medalign.models.builders import with_bos_post_processor
from tests.conftest import dataset_cfg, default, loglik_pairs, shared_file

_with_bos = with_bos_post_processor  # the tiny tokenizer, BOS-adding


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model directory, and a copy whose saved tokenizer adds BOS."""
    from transformers import AutoTokenizer

    from medalign.models.load import model_source

    plain = Path(model_source(default(ModelConfig)))
    bos = tmp_path_factory.mktemp("tiny_bos")
    for path in plain.iterdir():
        if path.is_file():
            shutil.copy(path, bos / path.name)
    _with_bos(AutoTokenizer.from_pretrained(plain)).save_pretrained(bos)
    return {"plain": plain, "bos": bos}


def _tok(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _real_items(n: int = 5) -> list[tuple[str, list[str]]]:
    rows = []
    for name, rel, changes in [
        ("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", {"options": 4}),
        ("medmcqa", "medmcqa/dev_converted_sample.json", {}),
    ]:
        path = shared_file(*rel.split("/"))
        records = load_records(dataset_cfg(name, path=str(path), **changes)).records[:n]
        rows += loglik_pairs(name, records)
    return rows


def test_a_tokenizer_without_bos_encodes_as_before(dirs) -> None:
    tok = _tok(dirs["plain"])
    items = [*_real_items(3), ("Question: Is it safe?\nAnswer:", ["yes", "no", "maybe"])]
    for (context, choices), encoded in zip(items, encode_batch(tok, items), strict=True):
        ctx = tok(context, add_special_tokens=False)["input_ids"]  # the previous rule
        for choice, pair in zip(choices, encoded, strict=True):
            whole = tok(context + " " + choice, add_special_tokens=False)["input_ids"]
            assert pair == (ctx, whole[len(ctx) :]) == encode(tok, context, choice)


def test_a_bos_adding_tokenizer_gets_bos_in_front_of_every_context(dirs) -> None:
    tok = _tok(dirs["bos"])
    items = _real_items(3)
    for (context, choices), encoded in zip(items, encode_batch(tok, items), strict=True):
        for choice, (ctx, cont) in zip(choices, encoded, strict=True):
            assert ctx[0] == tok.bos_token_id and tok.bos_token_id not in ctx[1:] + cont
            assert (ctx, cont) == encode(tok, context, choice)
            assert ctx == tok(context)["input_ids"]
        no_bos = encode_batch(tok, [(context, choices)], add_bos_token=False)[0]
        assert [c for c, _ in no_bos][0] == encoded[0][0][1:]


@pytest.mark.parametrize("add_bos_token", [None, True, False])
@pytest.mark.parametrize("which", ["plain", "bos"])
def test_encoding_equals_lm_eval_hflm(dirs, which: str, add_bos_token: bool | None) -> None:
    hf = pytest.importorskip(
        "lm_eval.models.huggingface", reason="lm-eval not installed (the `bench` extra)"
    )
    lm = hf.HFLM(pretrained=str(dirs[which]), device="cpu", add_bos_token=add_bos_token)
    tok = _tok(dirs[which])  # loaded plainly: add_bos_token is our argument, not a load flag
    items = [
        *_real_items(5),
        ("Question: trailing space\nAnswer: ", ["A", "B"]),  # lm-eval moves the space
        ("<|begin_of_text|>Question: already has BOS\nAnswer:", ["yes", "no"]),
        ("", ["maybe", "no"]),  # empty context: lm-eval conditions on the prefix token
    ]
    ours = encode_batch(tok, items, add_bos_token=add_bos_token)
    for (context, choices), encoded in zip(items, ours, strict=True):
        for choice, pair in zip(choices, encoded, strict=True):
            if context:
                theirs = lm._encode_pair(context, " " + choice)
            else:
                cont = lm.tok_encode(" " + choice, add_special_tokens=False)
                theirs = ([lm.prefix_token_id], cont)
            assert pair == tuple(theirs), (which, add_bos_token, context[:40], choice)
            assert pair == encode(tok, context, choice, add_bos_token=add_bos_token)
