"""Model builders: turn `model.*` into a directory or hub id that `from_pretrained` reads.

`tiny` builds a small LLaMA-architecture model and a BPE tokenizer trained on
medalign's own example text, saves both with `save_pretrained` into the cache, and
returns that directory, so the tiny default goes through the very same
`from_pretrained` path as a 7B hub model. Cached by a digest of its parameters and
corpus: a second call builds nothing (medalign.models.cache: checked against the digests
of its files on every load, rebuilt when damaged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medalign.config import ModelConfig, TinyModelConfig
from medalign.errors import MedalignError
from medalign.models.cache import build_into_cache
from medalign.registry import register

log = logging.getLogger(__name__)

BUILDER_VERSION = 2  # bump when the tiny model's construction changes
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "examples"
# The tokenizer's training text: the four QA example sets (a fixed list, so adding an
# example file elsewhere never changes the tiny model and the numbers built on it).
CORPUS_DIRS = ("medmcqa", "medqa", "pubmedqa", "radqa")
SPECIAL_TOKENS = ["<|pad|>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>"]


def cache_root() -> Path:
    """`$MEDALIGN_CACHE`, else `$XDG_CACHE_HOME/medalign`, else `~/.cache/medalign`."""
    if os.environ.get("MEDALIGN_CACHE"):
        return Path(os.environ["MEDALIGN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medalign"


@register("model_builder", "hub")
def hub_source(cfg: ModelConfig) -> str:
    """A hub id or a local directory, used as given."""
    if not cfg.path:
        raise MedalignError(f"model {cfg.name!r}: builder 'hub' needs model.path (a hub id or dir)")
    return cfg.path


@register("model_builder", "tiny")
def build_tiny(cfg: ModelConfig) -> str:
    """Build (or find in the cache) the tiny model; return its directory."""
    corpus = tiny_corpus()
    target = cache_root() / "models" / f"tiny-{_digest(cfg.tiny, corpus)}"

    def build(staging: Path) -> Path:
        log.info("building the tiny model into %s", target)
        write_random_llama(cfg.tiny, corpus, staging)
        return staging

    return build_into_cache(target, "tokenizer.json", build)


def tiny_corpus() -> list[str]:
    """Every string in medalign's bundled example files: the tokenizer's training text."""
    texts: list[str] = []
    paths = [p for d in CORPUS_DIRS for p in (EXAMPLES_DIR / d).rglob("*")]
    for path in sorted(paths):
        if path.suffix in {".json", ".jsonl"}:
            text = path.read_text()
            try:
                _collect_strings(json.loads(text), texts)
            except json.JSONDecodeError:  # JSON Lines, whatever the extension says
                for line in text.splitlines():
                    if line.strip():
                        _collect_strings(json.loads(line), texts)
    if not texts:
        raise MedalignError(f"no example text found under {EXAMPLES_DIR} to train the tokenizer")
    return texts


def _collect_strings(obj: object, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect_strings(value, out)
    elif isinstance(obj, list):
        for value in obj:
            _collect_strings(value, out)


def _digest(tiny: TinyModelConfig, corpus: list[str]) -> str:
    settings = {**asdict(tiny), "head_std": tiny_head_std(tiny)}
    h = hashlib.sha256(json.dumps([BUILDER_VERSION, settings], sort_keys=True).encode())
    for text in corpus:
        h.update(text.encode())
    return h.hexdigest()[:12]


def write_random_llama(tiny: TinyModelConfig, corpus: list[str], out: Path) -> None:
    """A BPE tokenizer trained on `corpus` and a random LLaMA of `tiny`'s shape, saved to
    `out` with save_pretrained (the `tiny` and `world` builders)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from medalign.models.chat_templates import CHATML

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=tiny.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|begin_of_text|>",
        eos_token="<|im_end|>",  # generation stops at the end of the assistant turn
        pad_token="<|pad|>",
        padding_side="right",
        chat_template=CHATML,
        model_max_length=tiny.max_position_embeddings,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_hidden_layers,
        num_attention_heads=tiny.num_attention_heads,
        num_key_value_heads=tiny.num_key_value_heads,
        max_position_embeddings=tiny.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # its own head, initialized apart: see tiny_head_std
    )
    torch.manual_seed(tiny.seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.get_output_embeddings().weight.normal_(0.0, tiny_head_std(tiny))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def tiny_head_std(tiny: TinyModelConfig) -> float:
    """The init std of the tiny model's output head: 2/sqrt(hidden_size) unless set.
    Every other weight keeps LLaMA's 0.02.

    The head bounds every logit by d*std (|h| = sqrt(d) after the final RMSNorm, |w| =
    std*sqrt(d)), and LoRA leaves the head and that norm frozen. At 0.02 and d=64 the cap
    is about +-1.3: the sampled distribution stays near uniform whatever SFT does, and
    GRPO's verifiable rewards stay 0. At 2/sqrt(d) the cap is 2*sqrt(d) (16 at d=64)
    against a spread of 2 for the other tokens: enough for one token to take 99% of a
    2,048-token vocabulary, as a trained model's head can (a 4,096-wide LLaMA at 0.02
    already has a cap of 82). The head is not tied to the embedding (as in LLaMA-3):
    a tied head this large would make the untrained model repeat its input token.
    """
    if tiny.head_std is not None:
        return tiny.head_std
    return 2.0 * tiny.hidden_size**-0.5


def with_bos_post_processor(tokenizer: Any) -> Any:
    """`tokenizer` with a LLaMA-style post-processor that puts BOS before every text: the
    tiny tokenizer as a BOS-adding one (LLaMA-2/3, Mistral), for lm-eval parity checks."""
    from tokenizers.processors import TemplateProcessing

    bos = tokenizer.bos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tokenizer.bos_token_id)],
    )
    return tokenizer
