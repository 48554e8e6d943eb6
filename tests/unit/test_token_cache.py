"""The tokenized-dataset cache and the one-pass tokenization (issue 16), and the
max_length refusal (issue 13): fast, on a tokenizer trained in milliseconds and the
bundled MedMCQA examples. TRL's own preparation is compared in
tests/integration/test_sft_preprocess.py (slow: it needs the model)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from medalign.data import token_cache
from medalign.data.prepare import prepare_sft
from medalign.errors import MedalignError
from tests.conftest import REPO, compose, tree_digest


def _tokenizer(vocab_size: int = 600, template: str | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from medalign.models.builders import SPECIAL_TOKENS, tiny_corpus
    from medalign.models.chat_templates import CHATML

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tiny_corpus()[:400], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        chat_template=template or CHATML,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return _tokenizer()


def _args(**changes) -> SimpleNamespace:
    """The SFTConfig fields data preparation reads (trl.SFTConfig in the slow tests)."""
    base = dict(
        max_length=1024,
        truncation_mode="keep_start",
        completion_only_loss=True,
        packing=False,
        packing_strategy="bfd",
        shuffle_dataset=False,
        seed=42,
        assistant_only_loss=False,
        chat_template_path=None,
    )
    return SimpleNamespace(**{**base, **changes})


def _setup(tmp_path: Path, *overrides: str):
    from medalign.config import validate
    from medalign.data.loading import load_training_data

    cfg = validate(
        compose(
            "stage=medmcqa",
            f"preprocess.cache_dir={tmp_path / 'cache'}",
            "preprocess.num_proc=1",
            *overrides,
        )
    )
    return cfg, load_training_data(cfg).parts


def test_cached_dataset_is_identical_to_a_fresh_tokenization(tmp_path, tokenizer) -> None:
    cfg, parts = _setup(tmp_path)
    first = prepare_sft(cfg, parts, tokenizer, _args())
    again = prepare_sft(cfg, parts, tokenizer, _args())
    fresh = prepare_sft(
        dataclasses.replace(cfg, preprocess=dataclasses.replace(cfg.preprocess, cache=False)),
        parts,
        tokenizer,
        _args(),
    )
    assert (first.hit, again.hit, fresh.hit) == (False, True, False)
    assert again.cache_key == first.cache_key == fresh.cache_key
    for column in ("input_ids", "labels"):
        assert again.dataset[column] == fresh.dataset[column]
    assert len(fresh.dataset) == 30 and again.stats == fresh.stats
    labels = fresh.dataset["labels"][0]
    assert labels[0] == -100 and labels[-1] != -100  # loss on the answer only


def test_tokenizer_template_or_max_length_changes_miss_the_cache(tmp_path, tokenizer) -> None:
    cfg, parts = _setup(tmp_path)
    assert not prepare_sft(cfg, parts, tokenizer, _args()).hit
    assert prepare_sft(cfg, parts, tokenizer, _args()).hit
    other_vocab = _tokenizer(vocab_size=500)
    other_template = _tokenizer(template="{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    assert not prepare_sft(cfg, parts, other_vocab, _args()).hit
    assert not prepare_sft(cfg, parts, other_template, _args()).hit
    assert not prepare_sft(cfg, parts, tokenizer, _args(max_length=900)).hit
    cfg2, parts2 = _setup(tmp_path, "dataset.prompt_template='Q: {question}\n{options}'")
    assert not prepare_sft(cfg2, parts2, tokenizer, _args()).hit
    assert len(token_cache.entries(tmp_path / "cache")) == 5
    assert prepare_sft(cfg2, parts2, tokenizer, _args()).hit


def test_too_short_max_length_is_refused_with_the_count_and_the_length_needed(
    tmp_path, tokenizer
) -> None:
    cfg, parts = _setup(tmp_path)
    whole = prepare_sft(cfg, parts, tokenizer, _args()).stats
    assert whole.truncated == whole.dropped == 0 and whole.needed <= whole.longest
    short = whole.needed - 1  # the longest prompt fills it: that row keeps no answer token
    with pytest.raises(MedalignError) as err:
        prepare_sft(cfg, parts, tokenizer, _args(max_length=short))
    message = str(err.value)
    assert f"trainer.max_length={short}:" in message
    assert f"set trainer.max_length={whole.needed} or more" in message
    cut = prepare_sft(cfg, parts, tokenizer, _args(max_length=whole.needed))
    assert cut.stats.dropped == 0 and cut.stats.truncated > 0
    assert max(len(ids) for ids in cut.dataset["input_ids"]) == whole.needed


def _store_one(root: Path, key: str) -> Path:
    from datasets import Dataset

    data = Dataset.from_dict({"input_ids": [[1, 2, 3]] * 50, "labels": [[-100, 2, 3]] * 50})
    return token_cache.store(root, key, data, {"stats": {}})


def test_a_corrupt_or_foreign_entry_is_never_read(tmp_path, caplog) -> None:
    root = tmp_path / "cache"
    entry = _store_one(root, "k1")
    assert token_cache.load(root, "k1") is not None
    arrow = next(entry.rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:-40])  # a write cut short
    with caplog.at_level(logging.WARNING):
        assert token_cache.load(root, "k1") is None
    assert "checksum mismatch" in caplog.text and not entry.exists()
    _store_one(root, "k2").rename(root / "k3")  # another key's entry under this name
    assert token_cache.load(root, "k3") is None and not (root / "k3").exists()


@pytest.mark.slow  # a subprocess killed with SIGKILL mid-write (about 3 s)
def test_a_killed_write_leaves_no_readable_entry(tmp_path) -> None:
    root = tmp_path / "cache"
    script = f"""
import os, signal
from datasets import Dataset
from medalign.data import token_cache
original = Dataset.save_to_disk
def save_then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
Dataset.save_to_disk = save_then_die
token_cache.store({str(root)!r}, "k", Dataset.from_dict({{"input_ids": [[1, 2]]}}), {{}})
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO)
    assert result.returncode == -9
    assert list(root.glob(".tmp-k-*")), "the writer died mid-entry"
    assert token_cache.load(root, "k") is None and not (root / "k").exists()
    assert token_cache.entries(root) == []


def test_clear_removes_every_entry(tmp_path, capsys) -> None:
    root = tmp_path / "cache"
    _store_one(root, "a")
    _store_one(root, "b")
    assert token_cache.main(["clear", str(root)]) == 0
    assert "removed 2 tokenized dataset(s)" in capsys.readouterr().out
    assert token_cache.entries(root) == [] and json.dumps(list(root.iterdir())) == "[]"


def test_clear_deletes_only_what_the_cache_wrote(tmp_path, capsys) -> None:
    """Regression (issue 24, defect 1): `clear <dir>` on a folder of someone's files
    printed "removed 0" and emptied it, subfolders included."""
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "results.csv").write_text("a,b\n1,2\n")
    (folder / "sub" / "x.json").write_text("{}")
    (folder / ".tmp-not-ours").mkdir()
    (folder / ".tmp-not-ours" / "thesis.tex").write_text("%")
    before = tree_digest(folder)
    assert token_cache.main(["clear", str(folder)]) == 0
    assert "removed 0 tokenized dataset(s)" in capsys.readouterr().out
    assert tree_digest(folder) == before  # every file still there, unchanged
    assert token_cache.entries(folder) == []


def test_clear_removes_entries_staging_and_remembered_loads_beside_foreign_files(
    tmp_path,
) -> None:
    from medalign.data import load_cache

    root = tmp_path / "cache"
    _store_one(root, "a")
    staging = root / ".tmp-b-x1y2"  # a writer that died mid-entry
    (staging / "data").mkdir(parents=True)
    load_cache.remember(root, "k1", {"rows": 3})
    (root / "notes.txt").write_text("keep me")
    (root / ".loads" / "mine.txt").write_text("keep me too")
    assert token_cache.clear(root) == 1
    assert sorted(p.name for p in root.iterdir()) == [".loads", "notes.txt"]
    assert [p.name for p in (root / ".loads").iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("what", ["missing", "file"])
@pytest.mark.parametrize("command", ["clear", "list"])
def test_a_named_cache_dir_that_is_missing_or_a_file_is_one_line_and_exit_1(
    tmp_path, what: str, command: str
) -> None:
    """`clear <typo>` said "removed 0 ... from <typo>" and exited 0 (issue 37)."""
    target = tmp_path / "nowhere"
    if what == "file":
        target.write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "medalign.data.token_cache", command, str(target)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    line = done.stderr.strip()
    assert str(target) in line and "\n" not in line and "Traceback" not in line, done.stderr
    assert "not a folder" in line or "does not exist" in line
    assert (target.read_text() == "mine") if what == "file" else not target.exists()
