"""A Task owns everything that depends on one dataset's format; the stages only loop.

    @register("task", "medqa")
    class MedQA(LetterChoiceTask): ...

    task = get_task(dataset_cfg)            # bound to its DatasetConfig (data/loading.py)
    records = task.read(path, bad)          # loading (data/loading.py picks the file)
    task.prompt(record), task.target(record)            # SFT text
    task.evaluate(ctx, records, mode)       # metrics + per-example predictions
    task.reward_reference(record)           # what the RL reward functions read
    task.pairs(records, objective)          # preference pairs for the reward model

Why: the eval runner, RL prompt rows and pair builders used to branch on format names
in five places, and wrong numbers hid in those branches. Now a format is one module; the
shared scoring machinery (eval/choice.py, eval/extractive.py, eval/safety.py) takes a
Task and knows no dataset. Adding a dataset = one Task module + one YAML (docs/extend/dataset.md,
"Add a dataset"); an instruction file needs only a YAML (tasks/instructions.py).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, ClassVar

from medalign.config import DatasetConfig
from medalign.data.files import FileHead
from medalign.data.records import BadRows, Messages, QARecord
from medalign.errors import MedalignError
from medalign.eval.loglik import LoglikItem  # noqa: F401  (Tasks import it from here)
from medalign.eval.runner import EvalContext
from medalign.registry import get, register_base

Pair = dict[str, Any]
# DatasetConfig keys only some formats read: a non-default value for a task that does
# not read it would be silently ignored, so validation refuses it (see `check_config`).
FORMAT_KEYS: dict[str, Any] = {"options": None, "cop_base": None}


class Task:
    """Base class: loading hooks, template rendering, and the hooks the stages call."""

    name: ClassVar[str] = ""
    eval_modes: ClassVar[tuple[str, ...]] = ()  # the first is eval.mode=auto; () = not evaluable
    reads: ClassVar[frozenset[str]] = frozenset()  # the FORMAT_KEYS this task reads
    dev_split: ClassVar[str | None] = None  # its own validation split (trainer.validation_split)
    # the per-question metric a claim about this dataset is made on (stage=compare runs
    # Holm over these; every other metric is secondary). Multiple choice: accuracy.
    primary_metric: ClassVar[str] = "acc"

    arg_defaults: ClassVar[dict[str, Any]] = {}  # the task's own settings (dataset.task_args)
    # where a row's rationale comes from, as the refusal of dataset.rationale=true on rows
    # without one names it (data/hints.py)
    rationale_source: ClassVar[str] = "no field: this format has no rationales"

    def __init__(self, cfg: DatasetConfig, key: str = "dataset") -> None:
        """`key`: where `cfg` sits in the run's config (`dataset`, the training set, or
        `datasets.<name>`, the catalogue entry evaluation reads), so that a message
        naming an override names the one that changes the set being read."""
        self.cfg = cfg
        self.key = key
        given = dict(cfg.task_args or {})
        unknown = sorted(set(given) - set(self.arg_defaults))
        if unknown:
            valid = ", ".join(sorted(self.arg_defaults)) or "(none)"
            raise MedalignError(
                f"config {key}.task_args.{unknown[0]}: {self.name} has no such setting; "
                f"its task_args: {valid}"
            )
        for name, value in given.items():  # "maybe" for a flag would read as true
            _check_arg_type(f"config {key}.task_args.{name}", value, self.arg_defaults[name])
        self.args = {**self.arg_defaults, **given}

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def recognizes(cls, head: FileHead) -> bool | None:
        """Is this file (its first 4 KB, first line, first JSON row) in this task's own
        layout? A task with a layout of its own answers True or False, and a file it
        does not recognize but another task does is refused at load time ("this is a
        medqa file"), before a wrong format trains. None (the default): the task reads
        whatever columns it is told (instructions, a YAML-declared multiple-choice
        dataset), so it claims no file and refuses none."""
        return None

    def split_file(self, folder: Path) -> Path:
        """The file of `cfg.split` inside a folder in the dataset's official layout."""
        return folder / f"{self.cfg.split}.json"

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        raise NotImplementedError

    def source_files(self, path: Path) -> list[Path]:
        """Every local file `read(path)` reads: a remembered load is keyed by their bytes
        (data/load_cache.py). A Task that reads files beside `path` adds them."""
        return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]

    def check_eval_data(self, data_root: str | None) -> None:
        """Start-up check of this evaluation set (the Task bound to it as evaluation reads
        it: its eval split, key `datasets.<name>`), run before training when the stage
        will evaluate (medalign.checks), so a set evaluation would refuse fails before
        hours of training, not after. None by default: reading a set can be slow
        (MedMCQA's 180k rows, a hub download); a Task whose set is cheap to read and can
        be refused for what it holds (PubMedQA's official test ids) overrides this."""

    def check_training_rows(self, part: Any) -> None:
        """Refuse a training set this format cannot train on (`part`: the LoadedData of
        its rows), before decontamination and tokenization; nothing by default."""

    def hub_split(self) -> str:
        """The hub split holding `cfg.split` (some hub copies have one split for all)."""
        return self.cfg.split

    def read_hub(self, rows: Any, bad: BadRows) -> list[QARecord]:
        raise MedalignError(f"dataset {self.cfg.name!r}: no hub layout is known for {self.name}")

    # -- rendering (SFT) ------------------------------------------------------------------
    def template_fields(self, record: QARecord) -> dict[str, str]:
        """Fields the prompt template may use: the common ones plus the format's own."""
        options = record.options or {}
        letters = list(options)
        return {
            "question": record.question.strip(),
            "context": "\n".join(c.strip() for c in record.context),
            "options": "\n".join(f"{k}. {v.strip()}" for k, v in options.items()),
            "letters": ", ".join(letters[:-1]) + f" or {letters[-1]}" if letters else "",
        }

    def answer_text(self, record: QARecord) -> str:
        """The gold answer as the final line states it."""
        if isinstance(record.answer, list):
            return record.answer[0] if record.answer else self.cfg.no_answer
        return record.answer

    def prompt(self, record: QARecord) -> str:
        return render(
            "dataset.prompt_template",
            self.cfg.prompt_template,
            self.template_fields(record),
            self.cfg.name,
        )

    def target(self, record: QARecord, rationale: bool | None = None) -> str:
        """Optional rationale, then the fixed final-answer line that evaluation parses."""
        final = self.final_line(self.answer_text(record))
        use = self.cfg.rationale if rationale is None else rationale
        if use and record.rationale:
            return f"{record.rationale.strip()}\n{final}"
        return final

    def final_line(self, answer: str) -> str:
        return render(
            "dataset.answer_template", self.cfg.answer_template, {"answer": answer}, self.cfg.name
        )

    def answer_line_pairs(self, sides: list[tuple[QARecord, str, str]], kind: str) -> list[Pair]:
        """(record, chosen answer, rejected answer) -> pairs of the final-answer lines
        alone: nothing but the answer differs, so only the prompt can tell which wins."""
        from medalign.rewards.pairs import pair

        return [
            pair(self.prompt(r), self.final_line(c), self.final_line(j), kind, self.cfg.name)
            for r, c, j in sides
        ]

    def messages(self, record: QARecord) -> dict[str, Messages]:
        """One prompt/completion example in chat form (TRL masks the prompt's loss)."""
        return {
            "prompt": [{"role": "user", "content": self.prompt(record)}],
            "completion": [{"role": "assistant", "content": self.target(record)}],
        }

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(
        self, ctx: EvalContext, records: list[QARecord], mode: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        raise MedalignError(
            f"eval.datasets: {self.cfg.name!r} ({self.name}) has no evaluation; "
            "train on it, but evaluate on a scored dataset"
        )

    def cluster(self, record: QARecord) -> str | None:
        """The group of questions that share this one's context (several RadQA questions on
        one report): stage=compare resamples such groups whole. None: independent."""
        return None

    def example_scores(
        self, records: list[QARecord], correct: list[float]
    ) -> list[dict[str, float]]:
        """Per-question shares of the task's own averaged metrics (an MMLU macro average),
        kept in predictions.jsonl so stage=compare can pair them; none by default."""
        return [{} for _ in records]

    def resolve_mode(self, mode: str) -> str:
        """eval.mode for this task: auto -> its own default; a mode it lacks is an error."""
        if not self.eval_modes:
            self.evaluate(None, [], mode)  # type: ignore[arg-type]  # raises the clear error
        if mode == "auto":
            return self.eval_modes[0]
        if mode not in self.eval_modes:
            raise MedalignError(
                f"eval.mode={mode}: {self.cfg.name!r} is scored by {' or '.join(self.eval_modes)}"
            )
        return mode

    # -- RL -------------------------------------------------------------------------------
    # The rewards that score this task's RL prompts (rewards/functions.py SCOPED): a scoped
    # reward is None on another task's prompt, which TRL leaves out of that completion's
    # weighted sum. Why here: the safety model scoring answers to knowledge questions set
    # GRPO's advantages and correctness fell (experiments/README.md, 2026-12-02); what a
    # prompt is for is its format's business. A question with a gold answer:
    rl_rewards: ClassVar[frozenset[str]] = frozenset({"correctness", "format", "helpfulness"})

    def reward_reference(self, record: QARecord) -> dict[str, Any] | None:
        """What `correctness` needs to score a completion (None: not an RL prompt)."""
        return None

    @classmethod
    def correctness(cls, text: str, reference: dict[str, Any]) -> float:
        raise NotImplementedError

    # -- preference pairs -----------------------------------------------------------------
    def pairs(
        self, records: list[QARecord], objective: str, negatives: list[str | None] | None = None
    ) -> list[Pair]:
        """Preference pairs for `objective` (helpfulness | safety); none by default."""
        return []


register_base("task", Task)  # a dotted dataset.format must name a Task subclass


def render(key: str, template: str, fields: dict[str, Any], dataset: str) -> str:
    """`template.format(**fields)`, with an error naming the unknown field."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    unknown = [n for n in names if n not in fields]
    if unknown:
        raise MedalignError(
            f"{key} of dataset {dataset!r}: unknown field {{{unknown[0]}}}; "
            f"available: {', '.join('{' + f + '}' for f in fields)}"
        )
    return template.format(**fields)


def _check_arg_type(where: str, value: Any, default: Any) -> None:
    """A task setting whose default is true or false must be true or false: YAML and
    Hydra read `maybe` as a string, which Python would take as true. Other settings may
    take several forms (a YAML task's `options`: a field name or a list of them)."""
    if isinstance(default, bool) and not isinstance(value, bool):
        raise MedalignError(f"{where}={value!r}: must be true or false (default: {default!r})")


def task_class(name: str) -> type[Task]:
    """The registered Task class `name` (or a dotted path to one; the registry refuses
    anything but a Task subclass). A Task bound to its config: data/loading.py `get_task`."""
    return get("task", name)


def check_config(cfg: DatasetConfig, where: str) -> None:
    """Refuse an unknown task, and format keys the task would ignore (options=4 on
    PubMedQA)."""
    try:
        cls = task_class(cfg.format)
    except MedalignError as exc:
        raise MedalignError(f"config {where}.format={cfg.format}: {exc}") from None
    cls(cfg, where)  # unknown task_args fail here, before any model loads
    for key, default in FORMAT_KEYS.items():
        value = getattr(cfg, key, default)
        if value != default and key not in cls.reads:
            raise MedalignError(
                f"config {where}.{key}={value!r}: dataset {cfg.name!r} ({cfg.format}) does not "
                f"read {key!r}, so it would be ignored; remove it"
            )
