"""An interactive terminal chat with a model: a run's adapter, an adapter, or the base.

    python -m medalign stage=chat init_from=runs/2026-11-25/15-04-39-271896_pubmedqa
    python -m medalign stage=chat init_from=path/to/adapter generate.do_sample=true

Type a message and press Enter. A line ending in `\\` continues the message on the next
line (an empty line then sends it). `/reset` starts a new conversation (the system prompt,
`generate.system_prompt`, stays), `/exit` or Ctrl-D ends the chat. The answer streams as
it is generated; every turn is appended to `chat.jsonl` in the run directory. Needs a
terminal: with stdin from a pipe or file use stage=generate instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

from medalign.config import KindOnlyStageConfig, RunConfig
from medalign.errors import MedalignError
from medalign.outputs import RunDir
from medalign.stages.spec import StageInputs, StageSpec, register_stage

USER_PROMPT = "you> "
MORE_PROMPT = "...> "
MODEL_PROMPT = "model> "
HELP = (
    "Enter sends; end a line with \\ to go on (an empty line then sends). "
    "/reset: new conversation, /exit or Ctrl-D: quit."
)


def run_chat(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out = inputs.record
    from medalign.models.inference import check_generate_settings, load_for_inference

    check_generate_settings(cfg.generate)
    if not sys.stdin.isatty():
        raise MedalignError(
            "stage=chat needs an interactive terminal, but stdin is not one; to answer a "
            "file of questions use stage=generate generate.input=<questions.jsonl>"
        )
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    model, tokenizer, description = load_for_inference(cfg, inputs.start)
    out.update(model=description)
    print(f"medalign chat with {description}\n{HELP}", flush=True)
    turns = chat_loop(
        lambda history: _answer(model, tokenizer, history, cfg), cfg, out, input_fn=input
    )
    return {"chat/turns": turns}


def chat_loop(
    answer: Callable[[list[dict[str, str]]], str],
    cfg: RunConfig,
    out: RunDir,
    input_fn: Callable[[str], str] = input,
) -> int:
    """Read messages, answer each with the whole conversation so far; return the turns."""
    system = cfg.generate.system_prompt
    history = [{"role": "system", "content": system}] if system else []
    fresh = len(history)
    turns = 0
    while True:
        message = read_message(input_fn)
        if message is None or message.strip() == "/exit":
            print(flush=True)
            return turns
        if message.strip() == "/reset":
            del history[fresh:]
            print("(new conversation)", flush=True)
            continue
        history.append({"role": "user", "content": message})
        reply = answer(history)
        history.append({"role": "assistant", "content": reply})
        turns += 1
        with (out.path / "chat.jsonl").open("a") as log:
            log.write(json.dumps({"turn": turns, "user": message, "assistant": reply}) + "\n")


def read_message(input_fn: Callable[[str], str] = input) -> str | None:
    """One message: lines ending in a backslash continue it; None at end of input."""
    lines: list[str] = []
    while True:
        try:
            line = input_fn(MORE_PROMPT if lines else USER_PROMPT)
        except EOFError:
            return "\n".join(lines) if lines else None
        if not lines and not line.strip():
            continue  # nothing typed yet: ask again
        if lines and not line.strip():
            return "\n".join(lines)  # an empty line sends a continued message
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        lines.append(line)
        return "\n".join(lines)


def _answer(model: Any, tokenizer: Any, history: list[dict[str, str]], cfg: RunConfig) -> str:
    from transformers import TextStreamer

    from medalign.models.inference import chat_completions

    print(MODEL_PROMPT, end="", flush=True)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    reply = chat_completions(
        model, tokenizer, [history], cfg.generate, progress=False, streamer=streamer, where="chat"
    )[0]
    return reply  # the streamer has printed it, newline included


SPEC = register_stage(StageSpec(kind="chat", schema=KindOnlyStageConfig, run=run_chat))
