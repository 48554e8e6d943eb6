"""Adapter variants reach peft: DoRA, PiSSA/OLoRA/Gaussian init, LoRA+, and the refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import LoraSettings, ModelConfig, QuantConfig, validate
from medalign.errors import MedalignError
from medalign.models.lora import (
    check_lora,
    conversion_kwargs,
    lora_config,
    loraplus_optimizer,
    snapshot_initial_adapter,
)
from tests.conftest import compose, default


@pytest.fixture(scope="module")
def tiny_dir() -> str:
    from medalign.models.builders import build_tiny

    return build_tiny(default(ModelConfig))


def _model(tiny_dir: str):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()


def _peft(tiny_dir: str, **changes):
    from peft import get_peft_model

    settings = dataclasses.replace(default(LoraSettings), dropout=0.0, **changes)
    return get_peft_model(_model(tiny_dir), lora_config(settings, default(QuantConfig)))


def _logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = [[5, 17, 42, 99, 7, 300, 12, 64]]


def test_config_fields_reach_peft() -> None:
    cfg = validate(compose("lora=dora"))
    built = lora_config(cfg.lora, cfg.quant)
    assert built.use_dora is True and built.init_lora_weights is True
    cfg = validate(compose("lora=pissa", "lora.pissa_niter=4"))
    assert lora_config(cfg.lora, cfg.quant).init_lora_weights == "pissa_niter_4"
    cfg = validate(compose("lora.init=olora"))
    assert lora_config(cfg.lora, cfg.quant).init_lora_weights == "olora"
    cfg = validate(compose("lora.init=gaussian"))
    assert lora_config(cfg.lora, cfg.quant).init_lora_weights == "gaussian"
    assert lora_config(validate(compose()).lora).use_dora is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lora.init=loftq", "quant=nf4"], "lora.init=loftq with quant=nf4"),
        (["lora=pissa", "quant=int8"], "lora.init=pissa with quant=int8"),
        (["lora=none", "lora.use_dora=true"], "lora.use_dora is a LoRA variant"),
        (["lora.loraplus_lr_ratio=0.5"], "must be >= 1"),
        (["lora.pissa_niter=4"], "applies to lora.init=pissa only"),
        (["stage=rl", "rl.engine=verl", "lora=dora"], "verl's LoRA takes .* not lora.use_dora"),
        (["stage=rl", "rl.engine=verl", "lora=pissa"], "not lora.init=pissa"),
        (["stage=rl", "rl.engine=verl", "lora.loraplus_lr_ratio=4"], "lora.loraplus_lr_ratio"),
    ],
)
def test_unsupported_combinations_refused_at_validation(overrides, message) -> None:
    with pytest.raises(MedalignError, match=message):
        check_components(validate(compose(*overrides)))


def test_dora_and_olora_allowed_on_a_quantized_base() -> None:
    check_lora(default(LoraSettings, use_dora=True), default(QuantConfig, mode="nf4"))
    check_lora(default(LoraSettings, init="olora"), default(QuantConfig, mode="int8"))


def test_loftq_refused_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: LoftQ is allowed")
    with pytest.raises(MedalignError, match="loftq needs a CUDA GPU"):
        lora_config(default(LoraSettings, init="loftq"), default(QuantConfig))


def test_dora_adds_magnitude_vectors(tiny_dir: str) -> None:
    import torch

    plain, dora = _peft(tiny_dir), _peft(tiny_dir, use_dora=True)
    magnitudes = {n: p for n, p in dora.named_parameters() if "lora_magnitude_vector" in n}
    assert magnitudes and not any("magnitude" in n for n, _ in plain.named_parameters())
    name, vector = next(iter(magnitudes.items()))
    assert vector.requires_grad
    # DoRA's magnitude starts as the row norms of the base weight: the forward is unchanged
    ids = torch.tensor(IDS)
    torch.testing.assert_close(_logits(dora, ids), _logits(plain, ids), atol=1e-4, rtol=1e-4)
    # but scaling one magnitude changes it, where plain LoRA has no such parameter
    with torch.no_grad():
        vector.mul_(1.5)
    assert not torch.allclose(_logits(dora, ids), _logits(plain, ids), atol=1e-4)


def test_pissa_moves_the_principal_part_out_of_the_base(tiny_dir: str) -> None:
    import torch

    original = _model(tiny_dir)
    plain, pissa = _peft(tiny_dir), _peft(tiny_dir, init="pissa")
    ids = torch.tensor(IDS)
    reference = _logits(original, ids)
    # both start output-preserving ...
    torch.testing.assert_close(_logits(plain, ids), reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_logits(pissa, ids), reference, atol=1e-3, rtol=1e-3)
    # ... but PiSSA's base is the residual: without its adapter the model changes
    layer = "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    w0 = original.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(dict(plain.named_parameters())[layer], w0)
    assert not torch.allclose(dict(pissa.named_parameters())[layer], w0)
    with pissa.disable_adapter():
        assert not torch.allclose(_logits(pissa, ids), reference, atol=1e-3)
    with plain.disable_adapter():
        torch.testing.assert_close(_logits(plain, ids), reference)


def test_pissa_adapter_is_saved_as_plain_lora_on_the_original_base(
    tiny_dir: str, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel

    settings = default(LoraSettings, init="pissa", dropout=0.0)
    model = _peft(tiny_dir, init="pissa")
    initial = snapshot_initial_adapter(model, settings, tmp_path / "adapter_init")
    assert initial is not None and (initial / "adapter_config.json").is_file()
    ids = torch.tensor(IDS)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    model.eval()
    trained = _logits(model, ids)
    model.save_pretrained(tmp_path / "as_is")  # peft re-runs the PiSSA init at load
    reloaded = PeftModel.from_pretrained(_model(tiny_dir), tmp_path / "as_is")
    torch.testing.assert_close(_logits(reloaded, ids), trained, atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path / "adapter", **conversion_kwargs(initial))
    reloaded = PeftModel.from_pretrained(_model(tiny_dir), tmp_path / "adapter")
    torch.testing.assert_close(_logits(reloaded, ids), trained, atol=1e-4, rtol=1e-4)
    converted = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert converted["init_lora_weights"] is True and converted["r"] == 16  # plain LoRA, 2r
    assert snapshot_initial_adapter(model, default(LoraSettings), tmp_path / "x") is None


def test_loraplus_optimizer_gives_b_a_larger_learning_rate(tiny_dir: str) -> None:
    model = _peft(tiny_dir)
    assert loraplus_optimizer(model, default(LoraSettings), 1e-3) is None
    optimizer = loraplus_optimizer(model, default(LoraSettings, loraplus_lr_ratio=16.0), 1e-3)
    rates = sorted({group["lr"] for group in optimizer.param_groups if group["params"]})
    assert rates == pytest.approx([1e-3, 16e-3])
    with pytest.raises(MedalignError, match="needs the model with its adapter"):
        loraplus_optimizer(_model(tiny_dir), default(LoraSettings, loraplus_lr_ratio=4.0), 1e-3)


@pytest.mark.slow
def test_loraplus_and_neftune_reach_a_real_sft_trainer(tiny_dir: str, tmp_path: Path) -> None:
    """LoRA+ through `attach_loraplus`, NEFTune through SFTConfig.neftune_noise_alpha (the
    future trainer.neftune_noise_alpha): both active during a real SFTTrainer run."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from medalign.models.lora import attach_loraplus

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "completion": [{"role": "assistant", "content": f"Answer {i}."}],
        }
        for i in range(8)
    ]
    seen: dict[str, list] = {"ratios": [], "noisy": []}

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
            rates = sorted({g["lr"] for g in optimizer.param_groups if g["params"]})
            seen["ratios"].append(rates[-1] / rates[0])
            embed = model.get_input_embeddings()
            ids = torch.tensor([[5, 6, 7]])
            seen["noisy"].append(not torch.equal(embed(ids), embed(ids)))  # NEFTune hook

    settings = default(LoraSettings, loraplus_lr_ratio=16.0)
    trainer = SFTTrainer(
        model=_model(tiny_dir),
        args=SFTConfig(
            output_dir=str(tmp_path),
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            lr_scheduler_type="constant",
            use_cpu=True,
            bf16=False,
            report_to=[],
            logging_steps=1,
            neftune_noise_alpha=5.0,
            save_strategy="no",
            activation_checkpointing=False,
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(settings, default(QuantConfig)),
        callbacks=[Probe()],
    )
    assert attach_loraplus(trainer, settings, 1e-3)
    trainer.train()
    assert seen["ratios"] == pytest.approx([16.0, 16.0])
    assert seen["noisy"] == [True, True]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["nf4", "int8"])
@pytest.mark.parametrize(
    "settings", [default(LoraSettings, use_dora=True), default(LoraSettings, init="olora")]
)
def test_dora_and_olora_train_on_a_bitsandbytes_base(
    tiny_dir: str, mode: str, settings: LoraSettings
) -> None:
    """What check_lora allows on a quantized base, peft runs (forward and backward)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from medalign.models.quant import bnb_config

    quant = default(QuantConfig, mode=mode)
    base = AutoModelForCausalLM.from_pretrained(
        tiny_dir, quantization_config=bnb_config(quant), device_map={"": "cpu"}
    )
    model = get_peft_model(base, lora_config(settings, quant))
    ids = torch.tensor(IDS)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert torch.isfinite(loss) and grads and all(g is not None for g in grads)
