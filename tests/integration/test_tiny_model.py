"""The tiny default model: a real LLaMA checkpoint and tokenizer, built once, loaded offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medalign.config import ModelConfig, QuantConfig, TinyModelConfig
from medalign.models import builders
from medalign.models.load import load_causal_lm, load_tokenizer, model_source
from tests.conftest import default


def test_tiny_round_trips_through_from_pretrained() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    source = model_source(default(ModelConfig))
    assert Path(source, "config.json").is_file() and Path(source, "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    assert model.config.model_type == "llama"
    assert model.config.max_position_embeddings >= 2048
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)

    ids = tokenizer("Does aspirin prevent pre-eclampsia?", return_tensors="pt")
    assert tokenizer.decode(ids["input_ids"][0]) == "Does aspirin prevent pre-eclampsia?"
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], len(tokenizer))


def test_tokenizer_has_a_chat_template_with_a_generation_prompt() -> None:
    tokenizer = load_tokenizer(default(ModelConfig), model_source(default(ModelConfig)))
    messages = [{"role": "user", "content": "Is it safe?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": "Final answer: yes"}], tokenize=False
    )
    assert prompt == "<|im_start|>user\nIs it safe?<|im_end|>\n<|im_start|>assistant\n"
    assert full.startswith(prompt) and "Final answer: yes<|im_end|>" in full
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|pad|>"


def test_second_build_is_a_cache_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    first = builders.build_tiny(default(ModelConfig))

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tiny model was rebuilt despite a cached copy")

    monkeypatch.setattr(builders, "write_random_llama", fail)
    assert builders.build_tiny(default(ModelConfig)) == first


def test_different_shape_is_a_different_cache_entry(tmp_path: Path) -> None:
    os.environ["MEDALIGN_CACHE"], saved = str(tmp_path), os.environ["MEDALIGN_CACHE"]
    try:
        wide = default(
            ModelConfig, tiny=default(TinyModelConfig, hidden_size=32, intermediate_size=64)
        )
        a = builders.build_tiny(wide)
        b = builders.build_tiny(default(ModelConfig))
    finally:
        os.environ["MEDALIGN_CACHE"] = saved
    assert a != b and Path(a).parent == Path(b).parent == tmp_path / "models"
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tiny-")]


def test_model_loads_in_the_configured_dtype() -> None:
    import torch

    model = load_causal_lm(
        default(ModelConfig, dtype="bfloat16"),
        default(QuantConfig),
        model_source(default(ModelConfig)),
    )
    assert next(model.parameters()).dtype == torch.bfloat16
