"""eval.mode=cot: the extractor on its known pitfalls and against lm-eval's own
RegexFilter, the prompt against lm-eval PR #4081's, the majority vote, the tables, and the
start-up refusals (one line, before any model loads, nothing written)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from medalign.eval.cot import (
    cot_prompt,
    extract_flexible,
    extract_strict,
    flexible_letter_pattern,
    majority,
    strict_pattern,
    strip_think,
)
from tests.conftest import REPO, compose, shared_file, task_for

LETTERS = ["A", "B", "C", "D"]
OPTIONS = {
    "A": "Renal papillary necrosis",
    "B": "Cholesterol embolization",
    "C": "Eosinophilic granulomatosis with polyangiitis",
    "D": "Vitamin A deficiency",
}
# lm-eval PR #4081's own strict regex (medqa_4options_cot_zeroshot.yaml)
UPSTREAM_STRICT = r"Final Answer:\s*(?:\*\*)?\s*([A-D])"

# (text, strict, flexible)
PITFALLS = [
    ("Final Answer: D", "D", "D"),
    # the answer written as "D. <text>": the letter, not the capital inside the text
    ("D. Vitamin A deficiency", None, "D"),
    ("The deficiency is vitamin A deficiency.", None, "D"),  # the option's text alone
    ("Final Answer: D. Vitamin A deficiency", "D", "D"),
    # bold, wherever it sits
    ("**Final Answer: C**", "C", "C"),
    ("**Final Answer:** C", "C", "C"),
    ("Final Answer: **B**", "B", "B"),
    ("**Final Answer**: (A)", "A", "A"),
    ("final answer: b", None, None),  # a lower-case letter is a word, not an option
    ("Final answer: B", "B", "B"),  # medalign's own SFT answer line
    # several candidates: strict takes the first final line (lm-eval's take_first),
    # flexible the last option named
    ("A. fits the history, but B) does not, so (C)", None, "C"),
    ("Option B is tempting; the answer is D.", None, "D"),
    ("Final Answer: A\nOn reflection, Final Answer: C", "A", "C"),
    ("Final Answer: B\nB. Cholesterol embolization is renal papillary necrosis", "B", "A"),
    # no answer at all: unparsed, never a guess
    ("I cannot tell from this vignette.", None, None),
    ("A 45-year-old man presents with a rash.", None, None),  # "A" the article
    ("", None, None),
    ("Final Answer: Adenosine", None, None),  # not "A"
    # reasoning blocks are not the answer
    ("<think>Final Answer: B</think>\nFinal Answer: C", "C", "C"),
    ("<think>So Final Answer: B, or maybe D.", None, None),  # the budget ran out thinking
    ("It is B.</think>\nFinal Answer: D", "D", "D"),  # the template opened the block
]


@pytest.mark.parametrize(("text", "strict", "flexible"), PITFALLS)
def test_extractions_on_the_known_pitfalls(text: str, strict: str | None, flexible: str | None):
    assert extract_strict(text, LETTERS) == strict
    assert extract_flexible(text, LETTERS, OPTIONS) == flexible


def test_text_choices_yes_no_maybe() -> None:
    choices = ["yes", "no", "maybe"]
    assert extract_strict("Final Answer: Yes", choices) == "yes"
    assert extract_strict("Final Answer: yesterday", choices) is None
    assert extract_flexible("yes at first, no later, so maybe.", choices) == "maybe"
    assert extract_flexible("Unclear.", choices) is None


def test_strip_think_keeps_only_the_answer() -> None:
    assert strip_think("<think>a</think>B<think>c</think>D") == "BD"
    assert strip_think("a</think>B") == "B"
    assert strip_think("B<think>never closed") == "B"
    assert strip_think("no blocks") == "no blocks"


def test_majority_vote_ignores_unparsed_and_breaks_ties_by_first_given() -> None:
    assert majority(["B", None, "C", "C", None, None]) == "C"
    assert majority(["D", "B", "B", "D"]) == "D"
    assert majority([None, None]) is None
    assert majority(["A"]) == "A"


TEXTS = [text for text, _, _ in PITFALLS if "<think>" not in text and "</think>" not in text] + [
    "Final Answer:\n**C**",
    "Answer: B\nFinal Answer: B",
    "(B) and then (A)\nD:",
    "choice is C, option D",
    "The answer is A because",
]


def _regex_filter(pattern: str, group_select: int, texts: list[str]) -> list[str]:
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.filters.selection import TakeFirstFilter

    filtered = RegexFilter(regex_pattern=pattern, group_select=group_select).apply(
        [[t] for t in texts], [{} for _ in texts]
    )
    return list(TakeFirstFilter().apply(filtered, [{} for _ in texts]))


def test_the_extractor_equals_lm_evals_regex_filter() -> None:
    """Our patterns in lm-eval's own RegexFilter (+ take_first) give our answers: strict
    the first match, flexible (letters only) the last (group_select: -1)."""
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    strict = _regex_filter(strict_pattern(LETTERS), 0, TEXTS)
    flexible = _regex_filter(flexible_letter_pattern(LETTERS), -1, TEXTS)
    for text, s, f in zip(TEXTS, strict, flexible, strict=True):
        assert (extract_strict(text, LETTERS) or "[invalid]") == s, text
        assert (extract_flexible(text, LETTERS) or "[invalid]") == f, text
    assert sum(s != "[invalid]" for s in strict) >= 8  # most texts do name an answer


def test_strict_agrees_with_pr_4081s_regex_except_where_it_is_tolerant() -> None:
    """Upstream's exact pattern and ours agree on every text but the deliberate
    differences: a lower-case marker and bold around the marker (ours reads them), a
    letter that starts a word (upstream reads "Adenosine" as A, ours refuses)."""
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    upstream = _regex_filter(UPSTREAM_STRICT, 0, TEXTS)
    differ = {
        t: (u, extract_strict(t, LETTERS))
        for t, u in zip(TEXTS, upstream, strict=True)
        if (extract_strict(t, LETTERS) or "[invalid]") != u
    }
    assert differ == {
        "Final answer: B": ("[invalid]", "B"),
        "**Final Answer**: (A)": ("[invalid]", "A"),
        "Final Answer: Adenosine": ("A", None),
    }


def _cot_utils():
    path = REPO / "tests" / "assets" / "lm_eval_cot_tasks" / "cot_utils.py"
    spec = importlib.util.spec_from_file_location("cot_utils", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "rel", "changes"),
    [
        ("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", {"options": 4}),
        ("medmcqa", "medmcqa/dev_converted_sample.json", {}),
    ],
)
def test_the_prompt_is_pr_4081s_on_real_rows(name: str, rel: str, changes: dict) -> None:
    from medalign.data.loading import load_records

    path = shared_file(*rel.split("/"))
    task = task_for(name, path=str(path), **changes)
    records = load_records(task.cfg).records[:20]
    rows = [json.loads(line) for line in path.read_text().splitlines()[:20]]
    upstream = getattr(_cot_utils(), f"{name}_doc_to_text_cot")
    assert [cot_prompt(task, r, "lm_eval") for r in records] == [upstream(row) for row in rows]
    assert cot_prompt(task, records[0], "trained") == task.prompt(records[0])


def test_a_five_option_question_names_its_five_letters() -> None:
    from medalign.data.loading import load_records

    path = shared_file("medqa", "US_test_sample.jsonl")
    task = task_for("medqa", path=str(path), options=5)
    prompt = cot_prompt(task, load_records(task.cfg).records[0], "lm_eval")
    assert prompt.endswith("Final Answer: X\n(where X is A, B, C, D, or E).")
    assert "\nE. " in prompt


def test_the_cloze_form_asks_for_the_answer_itself_and_reads_the_option_text() -> None:
    """dataset.answer_as=text (the world's cloze form): no options shown, the answer is an
    option's text, strict and flexible read that text."""
    from medalign.data.loading import load_records

    path = shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    task = task_for("medqa", path=str(path), options=4, answer_as="text")
    record = load_records(task.cfg).records[0]
    prompt = cot_prompt(task, record, "lm_eval")
    assert prompt.endswith("Final Answer: X\n(where X is your answer).")
    assert "\nA. " not in prompt
    choices, gold = task.choices(record), task.gold(record)
    assert gold == record.options[str(record.answer)].strip()
    assert extract_strict(f"**Final Answer:** {gold.upper()}", choices) == gold
    wrong = next(c for c in choices if c != gold)
    assert extract_flexible(f"{gold} or {wrong}? I say {gold}.", choices) == gold
    assert extract_strict("Final Answer: B", choices) is None  # a letter is no answer here


def test_the_summary_names_the_protocol_beside_every_score() -> None:
    from medalign.eval.report import summary_markdown

    def m(value: float) -> dict:
        return {"value": value, "ci": [value - 0.1, value + 0.1], "n": 50}

    results = {
        "medqa": {
            "split": "test",
            "mode": "cot",
            "n": 50,
            "protocol": "cot maj@4 T=0.7",
            "metrics": {
                "acc_cot_strict": m(0.4),
                "unparsed_cot_strict": m(0.2),
                "acc_cot_flexible": m(0.5),
                "unparsed_cot_flexible": m(0.1),
                "maj4_cot_strict": m(0.46),
                "maj4_cot_flexible": m(0.54),
            },
        },
        "medmcqa": {"split": "dev", "mode": "loglik", "n": 50, "metrics": {"acc": m(0.3)}},
    }
    table = summary_markdown(results)
    assert "| medqa | test | cot strict | 50 | acc_cot_strict | 0.400 | 0.300-0.500 |" in table
    assert "| cot flexible | 50 | acc_cot_flexible | 0.500 |" in table
    assert "| cot strict maj@4 | 50 | maj4_cot_strict | 0.460 |" in table
    assert "| cot flexible maj@4 | 50 | maj4_cot_flexible | 0.540 |" in table
    assert "| medmcqa | dev | loglik | 50 | acc | 0.300 |" in table
    row = next(line for line in table.splitlines() if "| cot strict | " in line)
    assert row.endswith("| 0.200 |")  # its own unparsed rate


# -- bad input: one line, before any model loads, nothing written ---------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.mode=cot", "eval.samples=0"], "config eval.samples=0: must be >= 1"),
        (
            ["eval.mode=cot", "eval.samples=4"],
            "config eval.samples=4 with eval.temperature=0: greedy decoding gives 4 identical",
        ),
        (["eval.mode=cot", "eval.temperature=-1"], "config eval.temperature=-1.0: must be >= 0"),
        (["eval.samples=4", "eval.temperature=0.7"], "read by eval.mode=cot only"),
        (
            ["eval.mode=cot", "eval.max_new_tokens_per_dataset={medqa:0}"],
            "eval.max_new_tokens_per_dataset.medqa=0: must be >= 1",
        ),
        (
            [
                "eval.mode=cot",
                "eval.datasets=[medqa]",
                "eval.max_new_tokens_per_dataset={radqa:9}",
            ],
            "'radqa' is not evaluated",
        ),
    ],
)
def test_bad_cot_settings_are_one_line_and_nothing_is_written(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    from medalign.run import run

    with pytest.raises(MedalignError) as info:
        run(compose("stage=eval", "logger=none", *overrides), tmp_path / "run")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_cot_with_lm_eval_refuses_a_log_likelihood_task_and_takes_a_generative_one() -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    from medalign.checks import check_components

    def lm_eval(folder: str, task: str, *more: str):
        return validate(
            compose(
                "stage=eval",
                "eval.backend=lm_eval",
                "eval.mode=cot",
                f"eval.lm_eval.include_path={REPO / 'tests' / 'assets' / folder}",
                "eval.lm_eval.include_defaults=false",
                f"eval.lm_eval.tasks=[{task}]",
                *more,
            )
        )

    with pytest.raises(MedalignError) as info:
        check_components(lm_eval("lm_eval_tasks", "medalign_example_mmlu_medical"))
    assert "task 'medalign_example_mmlu_anatomy' is multiple_choice" in str(info.value)
    assert "not generate_until" in str(info.value) and "\n" not in str(info.value)
    check_components(lm_eval("lm_eval_cot_tasks", "medalign_medqa_cot_zeroshot"))
    with pytest.raises(MedalignError, match="eval.samples with eval.backend=lm_eval"):
        check_components(
            lm_eval(
                "lm_eval_cot_tasks",
                "medalign_medqa_cot_zeroshot",
                "eval.samples=2",
                "eval.temperature=0.5",
            )
        )


def test_compare_refuses_runs_scored_under_different_protocols(tmp_path: Path) -> None:
    from medalign.compare.engine import CompareSettings, compare_groups
    from medalign.compare.runs import EvaluatedRun, Question

    def evaluated(label: str, result: dict) -> EvaluatedRun:
        questions = {f"q{i}": Question({"acc": float(i % 2)}, None) for i in range(4)}
        return EvaluatedRun(
            label=label,
            folder=tmp_path / label,
            overrides=[],
            seed=None,
            backend="builtin",
            results={"medqa": {"n": 4, **result}},
            questions={"medqa": questions},
        )

    loglik = evaluated("loglik_run", {"mode": "loglik", "protocol": "loglik"})
    cot = evaluated("cot_run", {"mode": "cot", "protocol": "cot greedy"})
    with pytest.raises(MedalignError) as info:
        compare_groups([[loglik], [cot]], 0, CompareSettings())
    message = str(info.value)
    assert "loglik_run was scored under loglik and cot_run under cot greedy" in message
    assert "\n" not in message
    voted = evaluated("voted", {"mode": "cot", "protocol": "cot maj@8 T=0.7"})
    with pytest.raises(MedalignError, match="under cot greedy and voted under cot maj@8"):
        compare_groups([[cot], [voted]], 0, CompareSettings())
    old = evaluated("old", {"mode": "loglik"})  # results.json written before protocols
    compare_groups([[old], [loglik]], 0, CompareSettings())  # the same protocol: paired


def test_compare_pairs_cot_runs_and_fewer_unparsed_answers_is_a_gain(tmp_path: Path) -> None:
    from medalign.compare.engine import CompareSettings, compare_groups
    from medalign.compare.runs import EvaluatedRun, Question

    def evaluated(label: str, unparsed: float) -> EvaluatedRun:
        questions = {
            f"q{i}": Question(
                {"acc_cot_strict": float(i % 2), "unparsed_cot_strict": unparsed}, None
            )
            for i in range(40)
        }
        return EvaluatedRun(
            label=label,
            folder=tmp_path / label,
            overrides=[],
            seed=None,
            backend="builtin",
            results={"medqa": {"n": 40, "mode": "cot", "protocol": "cot greedy"}},
            questions={"medqa": questions},
        )

    runs = [[evaluated("before", 1.0)], [evaluated("after", 0.0)]]
    # the Task's primary metric (acc) is scored as acc_cot_strict under cot
    table = compare_groups(runs, 0, CompareSettings())
    verdicts = {row["metric"]: row["verdict"] for row in table["rows"]}
    assert verdicts == {"acc_cot_strict": "not significant", "unparsed_cot_strict": "secondary"}
    # named as a claim, fewer unparsed answers is a gain
    claims = CompareSettings(primary=["acc_cot_strict", "unparsed_cot_strict"])
    verdicts = {row["metric"]: row["verdict"] for row in compare_groups(runs, 0, claims)["rows"]}
    assert verdicts == {"acc_cot_strict": "not significant", "unparsed_cot_strict": "gain"}


def test_also_cot_is_refused_on_datasets_it_cannot_score(tmp_path) -> None:
    """eval.also_cot: not multiple choice, beside eval.mode=cot, unknown: one line each; a
    dataset that is not evaluated is not scored (experiment=world eval.datasets=[...])."""
    import pytest

    from medalign.checks import check_components
    from medalign.config import validate
    from medalign.errors import MedalignError
    from tests.conftest import compose

    cases = {
        ("eval.datasets=[radqa]", "eval.also_cot=[radqa]"): "not a multiple-choice dataset",
        (
            "eval.mode=cot",
            "eval.datasets=[medqa]",
            "eval.also_cot=[medqa]",
        ): "scored by CoT already",
        ("eval.datasets=[medqa]", "eval.also_cot=[medqs]"): "unknown dataset 'medqs'",
    }
    for overrides, expected in cases.items():
        with pytest.raises(MedalignError, match=expected):
            check_components(validate(compose("stage=eval", *overrides)))
    for datasets in ("[medqa]", "[medmcqa]"):
        check_components(
            validate(compose("stage=eval", f"eval.datasets={datasets}", "eval.also_cot=[medqa]"))
        )


def test_rl_correctness_reads_only_the_final_answer_line_where_answers_reason() -> None:
    """A rationale-trained dataset's RL reference is strict: an answer named in the
    reasoning but not on the final-answer line earns nothing (lenient parsing would)."""
    from tests.conftest import task_for

    task = task_for("medqa", rationale=True, answer_as="text")
    reference = {"gold": "brapine", "choices": ["brapine", "zolmab", "quixar", "vendopine"]}
    strict = {**reference, "strict": True}
    reasoned = "Findings suggest Zorbosis. The first-line drug is brapine.\nFinal answer: brapine"
    no_line = "Findings suggest Zorbosis. The answer is brapine."
    assert task.correctness(reasoned, strict) == 1.0
    assert task.correctness(no_line, strict) == 0.0
    assert task.correctness(no_line, reference) == 1.0  # the lenient parser finds it
