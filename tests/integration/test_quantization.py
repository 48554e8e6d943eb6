"""8-bit and 4-bit loading through bitsandbytes, which also quantizes on the CPU (>= 0.45)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import ModelConfig, QuantConfig
from medalign.errors import MedalignError
from medalign.models import quant as quant_module
from medalign.models.load import load_causal_lm, model_source
from medalign.models.quant import bnb_config, check_quant_available
from medalign.run import run
from tests.conftest import compose, default


@pytest.mark.parametrize(("mode", "layer"), [("int8", "Linear8bitLt"), ("nf4", "Linear4bit")])
def test_quantized_load_replaces_linear_layers(mode: str, layer: str) -> None:
    import bitsandbytes as bnb

    cfg = default(QuantConfig, mode=mode, compute_dtype="float32", prepare_for_kbit_training=True)
    model = load_causal_lm(default(ModelConfig), cfg, model_source(default(ModelConfig)))
    quantized = [m for m in model.modules() if isinstance(m, getattr(bnb.nn, layer))]
    assert len(quantized) >= 7 * default(ModelConfig).tiny.num_hidden_layers  # q,k,v,o,gate,up,down


def test_bnb_config_follows_the_quant_group() -> None:
    int8 = bnb_config(default(QuantConfig, mode="int8", llm_int8_threshold=5.0))
    assert int8.load_in_8bit and int8.llm_int8_threshold == 5.0
    nf4 = bnb_config(default(QuantConfig, mode="nf4", compute_dtype="bfloat16", double_quant=True))
    assert nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4"
    assert nf4.bnb_4bit_use_double_quant
    assert bnb_config(default(QuantConfig, mode="none")) is None


@pytest.mark.parametrize("mode", ["int8", "nf4"])
def test_quantized_lora_training_and_eval_run_on_this_machine(tmp_path: Path, mode: str) -> None:
    run(
        compose(
            "stage=medmcqa",
            f"quant={mode}",
            "logger=none",
            "trainer.max_steps=3",
            "dataset.limit=8",
            "eval.after_train=true",
            "eval.datasets=[medmcqa]",
            "eval.limit=4",
        ),
        tmp_path / "run",
    )
    stage = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["metrics"]["train/steps"] == 3
    assert "eval/medmcqa/acc" in stage["metrics"]


def test_without_cuda_or_a_cpu_backend_int8_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(quant_module, "_bnb_supports_cpu", lambda: False)
    with pytest.raises(MedalignError, match="quant=int8: no CUDA GPU"):
        check_quant_available(default(QuantConfig, mode="int8"))
    check_quant_available(default(QuantConfig, mode="none"))  # never needs bitsandbytes
