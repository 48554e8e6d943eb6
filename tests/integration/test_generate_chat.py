"""stage=generate answers a file of questions; stage=chat talks through a terminal."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.run import run
from medalign.stages.chat import read_message
from medalign.stages.generate import read_questions
from tests.conftest import REPO, compose
from tests.run_fixtures import make_curriculum


def test_generate_writes_one_answer_per_question(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path)
    questions = tmp_path / "questions.jsonl"
    rows = [
        {"id": "q1", "question": "Is aspirin an NSAID?"},
        {"prompt": "What does a troponin rise suggest?"},
        {"id": "q3", "messages": [{"role": "user", "content": "Define sepsis."}]},
        {"id": "q4", "question": "What is the first-line drug for anaphylaxis?"},
    ]
    questions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "answers.jsonl"
    metrics = run(
        compose(
            "stage=generate",
            "logger=none",
            f"init_from={source}:pubmedqa",
            f"generate.input={questions}",
            f"generate.output={out}",
            "generate.batch_size=3",
            "generate.max_new_tokens=6",
        ),
        tmp_path / "gen",
    )
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert metrics["generate/rows"] == 4
    assert [a["id"] for a in answers] == ["q1", 2, "q3", "q4"]
    assert answers[2]["question"] == "Define sepsis."
    assert all(isinstance(a["answer"], str) for a in answers)
    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())["stages"][0]
    assert manifest["model"].endswith(f"+ adapter {source / '1-pubmedqa' / 'adapter'}")
    assert manifest["status"] == "done"


def test_generate_reads_csv_and_names_bad_rows(tmp_path: Path) -> None:
    table = tmp_path / "q.csv"
    table.write_text("id,question\nA,Is it benign?\nB,Which lobe?\n")
    assert [r["id"] for r in read_questions(table)] == ["A", "B"]
    table.write_text("id,text\nA,Is it benign?\n")
    with pytest.raises(MedalignError, match="no 'question' or 'prompt' column"):
        read_questions(table)
    lines = tmp_path / "q.jsonl"
    lines.write_text('{"question": "ok"}\n{"answer": "no question here"}\n')
    with pytest.raises(MedalignError, match=r"q.jsonl, line 2: no 'question', 'prompt'"):
        read_questions(lines)
    lines.write_text('{"question": "ok"}\n{"question": \n')
    with pytest.raises(MedalignError, match="line 2: not valid JSON"):
        read_questions(lines)


def test_generate_without_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MedalignError, match="stage=generate needs generate.input"):
        run(compose("stage=generate", "logger=none"), tmp_path / "gen")


def test_chat_without_a_terminal_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    with pytest.raises(MedalignError, match="stage=chat needs an interactive terminal"):
        run(compose("stage=chat", "logger=none"), tmp_path / "chat")


def test_multi_line_messages() -> None:
    typed = iter(["", "first \\", "second", "ignored"])
    assert read_message(lambda _: next(typed)) == "first \nsecond"
    typed = iter(["one \\", "", "next"])
    assert read_message(lambda _: next(typed)) == "one "  # an empty line sends

    def eof(_: str) -> str:
        raise EOFError

    assert read_message(eof) is None


class _Terminal:
    """A child process on a pseudo-terminal: read until a prompt, type a line."""

    def __init__(self, args: list[str]) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "dumb"}
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, close_fds=True
        )
        os.close(slave)
        self.master, self.seen = master, ""

    def expect(self, text: str, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"never saw {text!r}; the terminal shows:\n{self.seen[-3000:]}"
                )
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                with contextlib.suppress(OSError):  # the child closed the terminal
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
        before, _, self.seen = self.seen.partition(text)
        return before

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())


@pytest.mark.slow
def test_chat_answers_two_turns_through_a_terminal(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path)
    chat_dir = tmp_path / "chat"
    term = _Terminal(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=chat",
            "logger=none",
            f"init_from={source}",
            "generate.max_new_tokens=8",
            "generate.system_prompt=You are a careful clinician.",
            f"hydra.run.dir={chat_dir}",
        ]
    )
    try:
        assert "medalign chat with" in term.expect("you> ")
        term.type("Is aspirin an NSAID?")
        term.expect("model> ")
        term.expect("you> ")
        term.type("Summarise this: \\")
        term.expect("...> ")
        term.type("chest pain, raised troponin.")
        term.expect("model> ")
        term.expect("you> ")
        term.type("/reset")
        term.expect("(new conversation)")
        term.type("/exit")
        assert term.proc.wait(timeout=60) == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.master)
    turns = [json.loads(line) for line in (chat_dir / "chat.jsonl").read_text().splitlines()]
    assert [t["user"] for t in turns] == [
        "Is aspirin an NSAID?",
        "Summarise this: \nchest pain, raised troponin.",
    ]
    assert all(isinstance(t["assistant"], str) for t in turns)
    manifest = json.loads((chat_dir / "manifest.json").read_text())["stages"][0]
    assert manifest["status"] == "done" and "2-medqa/adapter" in manifest["model"]
