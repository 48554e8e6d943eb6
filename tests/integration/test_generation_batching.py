"""Generation that is not the bottleneck (issue 25), checked on the tiny model:

- batched greedy generation (left padding) equals unbatched greedy generation, token for
  token, in evaluation's and stage=generate's one generator (models/inference.py);
- generating with the LoRA adapter merged gives the same tokens as unmerged, and the base
  weights afterwards are the same bits (fp32 and bf16), and GRPO trained with merged
  generation leaves its frozen base untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medalign.config import GenerateConfig
from tests.conftest import default
from tests.run_fixtures import save_adapter, tiny_dir

QUESTIONS = [
    "Is aspirin an NSAID?",
    "What does a troponin rise suggest after chest pain lasting two hours?",
    "Define sepsis.",
    "Which vitamin deficiency causes scurvy, and how does it present in adults?",
    "First-line drug for anaphylaxis?",
]


@pytest.fixture(scope="module")
def peft_model(tmp_path_factory: pytest.TempPathFactory):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_dir()
    adapter = tmp_path_factory.mktemp("adapter") / "adapter"
    save_adapter(base, adapter, seed=5)  # B is not zero: the adapter changes the answers
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    return model.eval(), AutoTokenizer.from_pretrained(base)


def _answers(model, tokenizer, batch_size: int) -> list[str]:
    from medalign.models.inference import chat_completions

    settings = default(GenerateConfig, batch_size=batch_size, max_new_tokens=12, do_sample=False)
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    return chat_completions(model, tokenizer, conversations, settings, progress=False)


def test_batched_greedy_generation_equals_one_question_at_a_time(peft_model) -> None:
    model, tokenizer = peft_model
    one_by_one = _answers(model, tokenizer, batch_size=1)
    assert len(set(one_by_one)) > 1  # the questions get different answers
    assert _answers(model, tokenizer, batch_size=len(QUESTIONS)) == one_by_one
    assert _answers(model, tokenizer, batch_size=2) == one_by_one


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_merged_generation_gives_the_same_tokens_and_the_same_base_bits(
    peft_model, dtype: str
) -> None:
    import torch

    from medalign.models.merged_generation import mergeable_layers, merged_adapter

    model, tokenizer = peft_model
    model = model.to(getattr(torch, dtype))
    try:
        layers = mergeable_layers(model)
        assert layers  # every LoRA layer of the tiny model sits on a plain float weight
        before = [layer.get_base_layer().weight.detach().clone() for layer in layers]
        unmerged = _answers(model, tokenizer, batch_size=len(QUESTIONS))
        with merged_adapter(model) as merged:
            assert merged and all(layer.merged for layer in layers)
            during = _answers(model, tokenizer, batch_size=len(QUESTIONS))
        after = [layer.get_base_layer().weight for layer in layers]
        assert not any(layer.merged for layer in layers)
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
        if dtype == "float32":  # bf16 rounds the merged sum: near-ties may flip there
            assert during == unmerged
    finally:
        model.to(torch.float32)


def test_a_quantized_or_adapterless_model_generates_unmerged() -> None:
    from transformers import AutoModelForCausalLM

    from medalign.models.merged_generation import merged_adapter

    plain = AutoModelForCausalLM.from_pretrained(tiny_dir())
    with merged_adapter(plain) as merged:
        assert merged is False


def test_grpo_with_merged_generation_keeps_its_base_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stage=rl (real GRPO steps on the tiny model) generates through merged_adapter, and
    the frozen base under the trained LoRA adapter is, bit for bit, the base on disk."""
    import torch
    from transformers import AutoModelForCausalLM

    from medalign.models import merged_generation
    from medalign.run import run
    from tests.conftest import compose

    seen = {}
    real = merged_generation.generate_merged

    def spy(trainer):
        seen["trainer"], seen["wired"] = trainer, real(trainer)
        return seen["wired"]

    monkeypatch.setattr(merged_generation, "generate_merged", spy)
    run(
        compose(
            *("stage=rl", "logger=none", "trainer.max_steps=2", "rl.limit=4"),
            *("trainer.per_device_train_batch_size=4", "rl.max_completion_length=16"),
            # words per sampled answer vary: a reward with variance in every group, so a gradient
            *("reward.weights={correctness: 0, format: 0, length: 1.0}", "reward.length_target=6"),
            "trainer.learning_rate=1e-2",
        ),
        tmp_path / "run",
    )
    assert seen["wired"] is True
    policy = seen["trainer"].model
    assert any(p.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)
    disk = dict(AutoModelForCausalLM.from_pretrained(tiny_dir()).named_parameters())
    layers = merged_generation.mergeable_layers(policy)
    names = {id(m): n for n, m in policy.named_modules()}
    assert layers
    for layer in layers:
        name = names[id(layer)].split("base_model.model.", 1)[1] + ".weight"
        assert torch.equal(layer.get_base_layer().weight, disk[name]), name
