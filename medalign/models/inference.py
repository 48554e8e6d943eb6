"""The model a person talks to: one loader and one chat-format generator for answering.

    python -m medalign stage=generate eval.run=runs/<date>/<run> generate.input=q.jsonl
    python -m medalign stage=chat eval.adapter=runs/<date>/<run>/adapter

`load_for_inference(cfg)` is the single place generate, chat (and later any other reader of
a run's model) load it: `model.*` + `quant.*` for the base, plus an adapter from
`eval.adapter`, or the adapter of a run's stage (`eval.run` + `eval.stage`, or the root
`run=`), in which case the base is the one that run recorded in its manifest (`base_model`,
with the `model.*` settings of its recorded config), not whatever `model=` says now.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from medalign.config import GenerateConfig, ModelConfig, RunConfig
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
# end-of-turn markers of common chat formats: generation stops at them as at EOS
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>")


def load_for_inference(cfg: RunConfig) -> tuple[Any, Any, str]:
    """(model in eval mode, tokenizer, a one-line description of what was loaded)."""
    from medalign.models.load import load_causal_lm, load_tokenizer, model_source
    from medalign.stages.eval import resolve_adapter

    settings = cfg.eval
    if cfg.run and not (settings.run or settings.adapter):
        settings = dataclasses.replace(settings, run=cfg.run)
    adapter = resolve_adapter(settings)
    model_cfg = cfg.model
    if adapter and settings.run and not settings.adapter:
        model_cfg, source = _recorded_base(Path(settings.run), adapter, cfg.model)
    else:
        source = model_source(cfg.model)
    if adapter and not Path(adapter, "adapter_config.json").is_file():
        # a full fine-tune (lora=none) records its whole model where an adapter would be
        source, adapter = adapter, None
        model_cfg = dataclasses.replace(model_cfg, path=source, builder="hub", revision=None)
    has_tokenizer = adapter and Path(adapter, "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(model_cfg, adapter if has_tokenizer else source)
    model = load_causal_lm(model_cfg, cfg.quant, source)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    description = f"{source}" + (f" + adapter {adapter}" if adapter else "")
    log.info("loaded %s", description)
    return model, tokenizer, description


def _recorded_base(run: Path, adapter: str, current: ModelConfig) -> tuple[ModelConfig, str]:
    """The base model (and its `model.*` settings) that the run's stage trained on."""
    from omegaconf import OmegaConf

    from medalign.config import merge_group

    manifest = json.loads((run / "manifest.json").read_text())
    stage = next(
        (s for s in reversed(manifest.get("stages", [])) if s.get("adapter") == adapter), {}
    )
    source = stage.get("base_model")
    if not source:
        raise MedalignError(
            f"eval.run={run}: stage {stage.get('name')!r} recorded no base_model in "
            f"{run / 'manifest.json'}; give model=... and eval.adapter={adapter} instead"
        )
    recorded = Path(stage.get("dir") or run) / "config.yaml"
    model_cfg = current
    if recorded.is_file():
        node = OmegaConf.to_container(OmegaConf.load(recorded)).get("model")  # type: ignore[union-attr]
        if isinstance(node, dict):
            model_cfg = merge_group("model", ModelConfig, node)
    local = Path(source).is_dir()
    model_cfg = dataclasses.replace(
        model_cfg, path=source, builder="hub", revision=None if local else model_cfg.revision
    )
    return model_cfg, source


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
) -> list[str]:
    """The assistant's next message for each conversation, batched with left padding."""
    import torch
    from tqdm.auto import tqdm

    texts = [render_chat(tokenizer, messages, where) for messages in conversations]
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
                    add_special_tokens=False,
                ).to(model.device)
                out = model.generate(
                    **batch, **generation_kwargs(tokenizer, settings), streamer=streamer
                )
                new = out[:, batch["input_ids"].shape[1] :]
                answers += [
                    t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)
                ]
                bar.update(len(new))
    finally:
        tokenizer.padding_side = side
    return answers


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
