"""vLLM and GPU-only switches (issue 25): each bad setting is one line at start-up, before
any model loads; the vLLM settings reach TRL; the vLLM generation path hands over exactly
the model being evaluated (checked against a stand-in `vllm` module: this machine has no
CUDA, so no real vLLM engine can run here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from medalign.config import GenerateConfig, validate
from medalign.errors import MedalignError
from medalign.models.switches import check_switches
from tests.conftest import compose, default


def test_vllm_generation_needs_cuda_and_vllm_and_the_builtin_scorer() -> None:
    cfg = validate(compose("eval.generation_backend=vllm"))
    with pytest.raises(MedalignError, match=r"eval.generation_backend=vllm needs a CUDA GPU"):
        check_switches(cfg, cuda=False)
    cfg = validate(compose("eval.generation_backend=vllm", "eval.backend=lm_eval"))
    with pytest.raises(MedalignError, match=r"with eval.backend=lm_eval, lm-eval generates"):
        check_switches(cfg, cuda=True)
    check_switches(validate(compose("rl.vllm_gpu_memory_utilization=0.5")), cuda=False)


def test_the_cli_refuses_use_vllm_here_in_one_line(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=rl",
            "rl.use_vllm=true",
            "logger=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "rl.use_vllm=true (vllm_mode=colocate) needs a CUDA GPU" in done.stderr
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_vllm_generation_serves_the_evaluated_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in `vllm` records what it is given: the base directory the model was loaded
    from, the model's own adapter (saved, served as a LoRA request), greedy sampling with
    the HF path's length and stops, the chat-rendered prompts; answers come back in order."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medalign.models import vllm_generation
    from medalign.models.inference import chat_completions, generation_kwargs
    from tests.run_fixtures import save_adapter, tiny_dir

    seen: dict = {}

    class LLM:
        def __init__(self, **kwargs):
            seen["engine"] = kwargs

        def generate(self, texts, params, lora_request=None, use_tqdm=True):
            seen.update(texts=texts, params=params, lora=lora_request)
            return [
                types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" a{i} ")])
                for i in range(len(texts))
            ]

    fake = types.ModuleType("vllm")
    fake.LLM = LLM
    fake.SamplingParams = lambda **kw: kw
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, number, path: (name, number, path)
    for name, module in {
        "vllm": fake,
        "vllm.lora": types.ModuleType("vllm.lora"),
        "vllm.lora.request": lora,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(vllm_generation, "_ENGINES", {})

    base = tiny_dir()
    save_adapter(base, tmp_path / "adapter", seed=2)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), tmp_path / "adapter"
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    settings = default(GenerateConfig, max_new_tokens=7, do_sample=False)
    conversations = [[{"role": "user", "content": q}] for q in ("Define sepsis.", "Is it?")]
    answers = chat_completions(model, tokenizer, conversations, settings, backend="vllm")
    assert answers == ["a0", "a1"]
    assert seen["engine"]["model"] == base and seen["engine"]["enable_lora"] is True
    assert seen["params"]["temperature"] == 0.0 and seen["params"]["max_tokens"] == 7
    assert (
        seen["params"]["stop_token_ids"] == generation_kwargs(tokenizer, settings)["eos_token_id"]
    )
    assert seen["texts"][0] == tokenizer.apply_chat_template(
        conversations[0], tokenize=False, add_generation_prompt=True
    )
    name, number, path = seen["lora"]
    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), path)
    import torch

    for (n, a), (_, b) in zip(model.named_parameters(), served.named_parameters(), strict=True):
        assert torch.equal(a, b), n
