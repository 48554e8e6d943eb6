"""The transformers names that differ between 5.24.0 (`make test`) and 5.17.0 (`make
test-gpu-pins`, the GPU pins): medalign/models/hf_compat.py reads them from the installed
classes, and these tests hold under both suites (on 5.17 the old code raised TypeError on
`activation_checkpointing` and AttributeError on `output.cache`)."""

from __future__ import annotations

import dataclasses

import pytest

from medalign.models.hf_compat import cache_key, checkpointing_key


def test_the_checkpointing_switch_reaches_every_trl_config(tmp_path) -> None:
    """TRL's configs default gradient checkpointing to True: medalign's False must land."""
    from trl import DPOConfig, GRPOConfig, RewardConfig, SFTConfig

    key = checkpointing_key()
    for config_cls in (SFTConfig, RewardConfig, DPOConfig, GRPOConfig):
        assert key in {f.name for f in dataclasses.fields(config_cls)}, config_cls
        args = config_cls(output_dir=str(tmp_path), use_cpu=True, **{key: False})
        assert getattr(args, key) is False, config_cls
        args = config_cls(output_dir=str(tmp_path), use_cpu=True, **{key: True})
        assert getattr(args, key) is True, config_cls


@pytest.fixture(scope="module")
def model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_a_continuation_fed_through_the_cache_sees_its_prompt(model) -> None:
    """Prompt then continuation through the KV cache = the whole sequence at once. A cache
    passed under the wrong keyword is dropped silently and the logits differ."""
    import torch

    ids = torch.randint(3, 64, (2, 10))
    with torch.no_grad():
        whole = model(input_ids=ids).logits[:, 6:]
        first = model(input_ids=ids[:, :6], use_cache=True)
        cache = getattr(first, cache_key())
        assert cache is not None
        rest = model(input_ids=ids[:, 6:], use_cache=True, **{cache_key(): cache}).logits
        alone = model(input_ids=ids[:, 6:]).logits
    assert torch.allclose(rest, whole, atol=1e-5)
    assert not torch.allclose(alone, whole, atol=1e-3)  # the prompt matters
