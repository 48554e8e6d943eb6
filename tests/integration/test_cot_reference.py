"""eval.mode=cot against lm-evaluation-harness 0.4.13 on real MedQA and MedMCQA rows.

lm-eval runs PR #4081's zero-shot CoT task as a custom `generate_until` task with regex
filters (tests/assets/lm_eval_cot_tasks/: strict `Final Answer: X` + take_first, flexible
last match), in the model's chat template; medalign scores the same rows with
eval.mode=cot. For every question: the same prompt, the same greedy generation and the
same strict and flexible answers. The model is the tiny model trained for a few seconds
to answer these questions in several written forms (a final line, bold, a `<think>`
block, a letter only, no answer at all), so the extractions are not all "unparsed".
"""

from __future__ import annotations

import pytest

from medalign.config import validate
from medalign.data.loading import load_records
from medalign.eval.cot import cot_prompt, strip_think
from medalign.eval.cot_score import render
from medalign.eval.runner import EvalContext
from tests.conftest import REPO, compose, shared_file, task_for

TASKS = REPO / "tests" / "assets" / "lm_eval_cot_tasks"
ROWS = 6  # per dataset
TOKENS = 48  # the task YAML's max_gen_toks
FILES = {
    "medqa": ("medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", {"options": 4}),
    "medmcqa": ("medmcqa/dev_converted_sample.json", {}),
}
LM_EVAL_TASK = {"medqa": "medalign_medqa_cot_zeroshot", "medmcqa": "medalign_medmcqa_cot_zeroshot"}


def _answer(k: int, gold: str, text: str) -> str:
    """Question k's taught answer: a different written form for each row."""
    wrong = "ABCD"[("ABCD".index(gold) + 1) % 4]
    return [
        f"The findings fit {text}.\nFinal Answer: {gold}",
        f"Not {wrong}. Option {gold} fits.\n**Final Answer: {gold}**",
        f"<think>Final Answer: {wrong}</think>\nFinal Answer:** {gold}",
        f"Either {wrong} or {gold}; the answer is {gold}.",
        "I cannot tell from this.",
        f"{gold}. {text}",
    ][k % 6]


def _train(model, tokenizer, examples: list[tuple[str, str]], steps: int = 400) -> None:
    """Full fine-tuning on (chat prompt, answer) pairs, loss on the answer only."""
    import torch

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    encoded = []
    for prompt, answer in examples:
        p = tokenizer(prompt, add_special_tokens=False).input_ids
        a = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False).input_ids
        encoded.append((torch.tensor([p + a]), torch.tensor([[-100] * len(p) + a])))
    for step in range(steps):
        ids, labels = encoded[step % len(encoded)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def rows_and_model():
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    from medalign.config import ModelConfig, QuantConfig
    from medalign.models.load import load_causal_lm, load_tokenizer, model_source
    from tests.conftest import default

    data = {}
    for name, (rel, changes) in FILES.items():
        task = task_for(name, path=str(shared_file(*rel.split("/"))), **changes)
        data[name] = (task, load_records(task.cfg).records[:ROWS])
    source = model_source(default(ModelConfig))
    model = load_causal_lm(default(ModelConfig), default(QuantConfig), source)
    tokenizer = load_tokenizer(default(ModelConfig), source)
    examples = []
    for task, records in data.values():
        prompts = [cot_prompt(task, r, "lm_eval") for r in records]
        texts, _ = render(tokenizer, prompts, "test")
        for k, (text, record) in enumerate(zip(texts, records, strict=True)):
            gold = str(record.answer)
            examples.append((text, _answer(k, gold, record.options[gold])))
    _train(model, tokenizer, examples)
    return data, model, tokenizer


@pytest.mark.slow
def test_cot_equals_lm_eval_regex_filtered_generate_until_on_real_rows(
    rows_and_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medalign.eval import harness
    from medalign.eval.cot_score import score_cot

    data, model, tokenizer = rows_and_model
    monkeypatch.chdir(REPO)  # the task YAMLs name ../shared/data relative to the repository
    cfg = validate(
        compose(
            "stage=eval",
            "eval.mode=cot",
            f"eval.max_new_tokens={TOKENS}",
            "eval.batch_size=4",
            "eval.bootstrap=0",
        )
    )
    lm = harness.hf_model(model, tokenizer=tokenizer, batch_size=4)
    lm.think_end_token = "</think>"  # lm-eval's own <think> stripping (HFLM think_end_token)
    manager = harness.task_manager(str(TASKS), include_defaults=False)
    out = harness.run_tasks(
        lm, manager, list(LM_EVAL_TASK.values()), limit=ROWS, bootstrap=0, apply_chat_template=True
    )
    parsed = {"strict": 0, "flexible": 0}
    forms = set()
    for name, (task, records) in data.items():
        ctx = EvalContext(model, tokenizer, cfg.eval, {})
        result, preds = score_cot(task, ctx, records)
        strict = harness.samples_of(out, LM_EVAL_TASK[name], "strict-match")
        flexible = harness.samples_of(out, LM_EVAL_TASK[name], "flexible-extract")
        assert len(preds) == len(strict) == len(flexible) == ROWS
        for mine, s, f in zip(preds, strict, flexible, strict=True):
            context = s["arguments"][0][0]
            record = next(r for r in records if r.id == mine["id"])
            ours_prompt = render(tokenizer, [cot_prompt(task, record, "lm_eval")], "t")[0][0]
            assert context == ours_prompt  # the same prompt, chat template included
            generated = mine["generations"][0]
            assert strip_think(generated).strip() == s["resps"][0][0].strip()  # same tokens
            theirs_strict = s["filtered_resps"][0]
            theirs_flexible = f["filtered_resps"][0]
            assert (mine["strict"][0] or "[invalid]") == theirs_strict, generated
            assert (mine["flexible"][0] or "[invalid]") == theirs_flexible, generated
            assert s["target"] == mine["gold"]
            assert float(mine["strict"][0] == mine["gold"]) == s["exact_match"]
            parsed["strict"] += mine["strict"][0] is not None
            parsed["flexible"] += mine["flexible"][0] is not None
            forms.add(("final" in generated.lower(), "**" in generated, "<think>" in generated))
        assert result["metrics"]["acc_cot_strict"]["n"] == ROWS
        assert result["cut_at_max_new_tokens"] == 0  # each taught answer ends at its stop
    # the comparison has something to compare: answers were extracted, in several forms
    assert parsed["strict"] >= 3 and parsed["flexible"] > parsed["strict"], parsed
    assert len(forms) >= 3, forms


@pytest.mark.slow
def test_lm_eval_backend_in_cot_mode_runs_its_tasks_in_the_chat_template(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval.backend=lm_eval eval.mode=cot: lm-eval's generative task with its own filters,
    each prompt in the model's chat template; both filters' scores reach the metrics."""
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    from medalign.eval import harness
    from medalign.run import run

    shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    monkeypatch.chdir(REPO)
    seen: list[bool] = []
    original = harness.run_tasks

    def spy(*args, **kwargs):
        seen.append(kwargs["apply_chat_template"])
        out = original(*args, **kwargs)
        prompts = [s["arguments"][0][0] for s in out["samples"][LM_EVAL_TASK["medqa"]]]
        seen.append(all(p.startswith("<|im_start|>user\n") for p in prompts))
        return out

    monkeypatch.setattr(harness, "run_tasks", spy)
    task = LM_EVAL_TASK["medqa"]
    metrics = run(
        compose(
            "stage=eval",
            "logger=none",
            "eval.backend=lm_eval",
            "eval.mode=cot",
            f"eval.lm_eval.include_path={TASKS}",
            "eval.lm_eval.include_defaults=false",
            f"eval.lm_eval.tasks=[{task}]",
            "eval.limit=2",
            "eval.bootstrap=0",
            "eval.plots=false",
        ),
        tmp_path / "run",
    )
    assert seen == [True, True]
    assert f"eval/{task}/exact_match_strict_match" in metrics
    assert f"eval/{task}/exact_match_flexible_extract" in metrics
