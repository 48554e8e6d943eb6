"""The model a person talks to: one loader and one chat-format generator for answering;
and the score a trained reward model gives an answer (`reward_model_fn`: an RL reward,
and the safety score of an evaluation).

    python -m medalign stage=generate init_from=runs/<date>/<run> generate.input=q.jsonl
    python -m medalign stage=chat init_from=runs/<date>/<run>/adapter

`load_for_inference(cfg)` is where generate and chat load their model: the configured
base, or whatever `init_from` names, resolved through the run's manifest (the base it
recorded, its adapter), not whatever `model=` says now.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medalign.config import GenerateConfig, RunConfig
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
# end-of-turn markers of common chat formats: generation stops at them as at EOS
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")


def load_for_inference(cfg: RunConfig, point: Any) -> tuple[Any, Any, str]:
    """(model in eval mode, tokenizer, a one-line description of what was loaded): the
    base, or exactly the model `init_from` names (models/init_from.py). `point`: the
    stage's `inputs.start` (init_from resolved once, by medalign.run)."""
    from medalign.models.init_from import load_model

    model, tokenizer, base = load_model(cfg, point)
    what = f"{base}" + (f" + adapter {point.adapter}" if point and point.adapter else "")
    log.info("loaded %s", what)
    return model.eval(), tokenizer, what


def render_chat(tokenizer: Any, messages: list[dict[str, str]], where: str) -> str:
    """The chat template applied to `messages` with the assistant's turn opened."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja2 TemplateError: e.g. a template without a system role
        if "system" in str(exc).lower() and messages and messages[0]["role"] == "system":
            raise MedalignError(
                f"{where}: this model's chat template refuses a system message ({exc}); "
                "set generate.system_prompt=null"
            ) from None
        raise MedalignError(
            f"{where}: the chat template cannot render these messages: {exc}"
        ) from None


def chat_completions(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    settings: GenerateConfig,
    *,
    progress: bool = True,
    streamer: Any = None,
    where: str = "generate",
    backend: str = "hf",
) -> list[str]:
    """The assistant's next message for each conversation: HF `generate` batched with left
    padding (each answer the one it gets alone, token for token), or vLLM (backend=vllm:
    eval.generation_backend)."""
    texts = [render_chat(tokenizer, messages, where) for messages in conversations]
    return text_completions(
        model,
        tokenizer,
        texts,
        settings,
        progress=progress,
        streamer=streamer,
        where=where,
        backend=backend,
    )


def text_completions(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    settings: GenerateConfig,
    *,
    progress: bool = True,
    streamer: Any = None,
    where: str = "generate",
    backend: str = "hf",
    add_special_tokens: bool = False,
    stopped: list[bool] | None = None,
) -> list[str]:
    """The continuation of each already rendered prompt (a chat template applied, or raw
    text for a model without one: then `add_special_tokens` follows lm-eval's BOS rule),
    batched as `chat_completions` is; sampled when `settings.do_sample`. `stopped` (HF
    only) receives, per text, whether it ended at a stop token rather than at
    max_new_tokens (a reasoning cut short shows as such, not as a wrong answer)."""
    import torch
    from tqdm.auto import tqdm

    if backend == "vllm":
        from medalign.models.vllm_generation import vllm_completions

        stops = generation_kwargs(tokenizer, settings)["eos_token_id"] or []
        return vllm_completions(model, tokenizer, texts, settings, stops)
    answers: list[str] = []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        with (
            tqdm(total=len(texts), desc=where, unit="q", disable=not progress) as bar,
            torch.no_grad(),
        ):
            for start in range(0, len(texts), settings.batch_size):
                batch = tokenizer(
                    texts[start : start + settings.batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=add_special_tokens,
                ).to(model.device)
                out = model.generate(
                    **batch, **generation_kwargs(tokenizer, settings), streamer=streamer
                )
                new = out[:, batch["input_ids"].shape[1] :]
                answers += [
                    t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)
                ]
                if stopped is not None:
                    ends = set(generation_kwargs(tokenizer, settings)["eos_token_id"] or [])
                    stopped += [bool(ends.intersection(row)) for row in new.tolist()]
                bar.update(len(new))
    finally:
        tokenizer.padding_side = side
    return answers


def reward_model_fn(name: str, path: str) -> Callable[..., list[float]]:
    """Score prompt+completion with a trained sequence-classification reward model (its
    directory, or a reward run: `reward_model_dir`); the function has TRL's reward
    signature and is named `name` (TRL logs it by name)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(reward_model_dir(name, path))

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()

    def score(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        texts = [
            tokenizer.apply_chat_template(p + c, tokenize=False)
            if isinstance(p, list)
            else f"{p}{c[-1]['content'] if isinstance(c, list) else c}"  # plain text
            for p, c in zip(prompts, completions, strict=True)
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            return model(**batch).logits[:, 0].float().tolist()

    score.__name__ = name
    return score


def reward_model_dir(name: str, path: str | Path) -> Path:
    """The reward model `reward.models.<name>` names: a model directory, or a reward run
    (or a curriculum) holding `reward_<name>/`; a run without that model is refused."""
    path = Path(path).expanduser()
    if (path / "config.json").is_file():
        return path
    if (path / "manifest.json").is_file():
        stage = reward_stage_dir(path)
        stages = json.loads((stage / "manifest.json").read_text()).get("stages") or [{}]
        models = stages[0].get("reward_models") or {}
        if name in models:
            return Path(models[name])
        raise MedalignError(
            f"reward.models.{name}={path}: that run trained no {name} reward model (it has: "
            f"{', '.join(sorted(models)) or 'none'}); train one (stage=reward "
            f"reward.objective={name}), or set reward.weights.{name}=0"
        )
    raise MedalignError(
        f"reward.models.{name}={path}: no reward model there (no config.json); give the "
        f"reward run's reward_{name}/ directory, or the run itself"
    )


def reward_stage_dir(path: Path) -> Path:
    """The reward run `path` names: itself, or a curriculum's reward stage."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        raise MedalignError(f"{path}: no manifest.json; name a reward run (or a curriculum)")
    data = json.loads(manifest.read_text())
    if data.get("kind") == "curriculum":
        stages = [s for s in data.get("stages", []) if s.get("reward_models")]
        if not stages:
            raise MedalignError(f"{path}: this curriculum has no finished reward stage")
        return Path(stages[-1]["dir"])
    return path


def generation_kwargs(tokenizer: Any, settings: GenerateConfig) -> dict[str, Any]:
    """`generate()` keywords: length, sampling (only when on), pad and end-of-turn ids."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    vocab = tokenizer.get_vocab()
    stops += [vocab[t] for t in END_OF_TURN if t in vocab and vocab[t] not in stops]
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": settings.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": stops or None,
    }
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    return kwargs


def check_generate_settings(settings: GenerateConfig) -> None:
    """Range checks shared by stage=generate and stage=chat."""
    if settings.batch_size < 1:
        raise MedalignError(f"generate.batch_size: expected >= 1, got {settings.batch_size}")
    if settings.max_new_tokens < 1:
        raise MedalignError(
            f"generate.max_new_tokens: expected >= 1, got {settings.max_new_tokens}"
        )
    if settings.do_sample and settings.temperature <= 0:
        raise MedalignError(
            f"generate.temperature={settings.temperature} with do_sample=true: expected > 0 "
            "(or do_sample=false for greedy answers)"
        )
    if not 0 < settings.top_p <= 1:
        raise MedalignError(f"generate.top_p: expected in (0, 1], got {settings.top_p}")
