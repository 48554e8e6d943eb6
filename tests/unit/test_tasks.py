"""The Task interface: new datasets added the new way (MMLU-medical in Python, an
instruction file in YAML alone), per-dataset settings that take effect, and the
silent-wrong-result regressions of the Task branches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import validate
from medalign.data.loading import eval_dataset_config, get_task, load_records
from medalign.errors import MedalignError
from tests.conftest import compose, dataset_cfg, shared_file, task_for

MMLU_PROMPT = (
    "The following are multiple choice questions (with answers) about clinical knowledge."
    "\n\nNormal adult resting respiratory rate, in breaths per minute, is about:"
    "\nA. 4-6\nB. 12-20\nC. 25-35\nD. 40-50\nAnswer:"
)


def test_mmlu_medical_reads_its_csv_layout_and_renders_lm_evals_prompt() -> None:
    task = task_for("mmlu_medical")
    records = load_records(dataset_cfg("mmlu_medical", split="test")).records
    assert len(records) == 24
    subjects = {r.meta["subject"] for r in records}
    assert subjects == {
        "anatomy", "clinical_knowledge", "college_biology",
        "college_medicine", "medical_genetics", "professional_medicine",
    }  # fmt: skip
    knowledge = next(r for r in records if r.meta["subject"] == "clinical_knowledge")
    item = task.loglik_item(knowledge)
    assert item.context == MMLU_PROMPT
    assert item.choices == ["A", "B", "C", "D"] and item.gold == 1


def test_mmlu_medical_scores_per_subject_and_macro_average() -> None:
    task = task_for("mmlu_medical")
    records = load_records(dataset_cfg("mmlu_medical", split="test")).records[:-3]
    correct = [float(r.meta["subject"] == "anatomy" or i % 2 == 0) for i, r in enumerate(records)]
    out = task.breakdowns(records, correct, [None] * len(records))
    per = out["by_subject"]
    assert per["anatomy"] == {"acc": 1.0, "n": 4}
    macro = sum(v["acc"] for v in per.values()) / 6
    assert out["metrics"]["acc_macro"]["value"] == pytest.approx(macro)
    assert macro != pytest.approx(sum(correct) / len(correct))  # macro is not the micro mean


def test_mmlu_bad_rows_name_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "anatomy_test.csv").write_text("Q?,a,b,c,d,E\n")
    cfg = dataset_cfg(
        "mmlu_medical", path=str(tmp_path), split="test", task_args={"subjects": ["anatomy"]}
    )
    with pytest.raises(MedalignError, match="anatomy_test.csv line 1.*field 'answer'.*'E'"):
        load_records(cfg)


def test_yaml_declared_instruction_dataset_in_each_mapping(tmp_path: Path) -> None:
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi."}) + "\n")
    pc = tmp_path / "b.csv"
    pc.write_text("prompt,completion\nSay hi.,Hi.\n")
    chat = tmp_path / "c.json"
    chat.write_text(json.dumps([{"messages": [
        {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}
    ]}]))  # fmt: skip
    cases = [
        (alpaca, {"instruction": "instruction", "input": "input", "output": "output"}),
        (pc, {"prompt": "prompt", "completion": "completion"}),
        (chat, {"messages": "messages"}),
    ]
    for path, columns in cases:
        cfg = dataset_cfg("instructions", path=str(path), task_args={"columns": columns})
        (record,) = load_records(cfg).records
        assert get_task(cfg).messages(record) == {
            "prompt": [{"role": "user", "content": "Say hi."}],
            "completion": [{"role": "assistant", "content": "Hi."}],
        }, path


def test_instruction_mapping_naming_a_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text(json.dumps({"question": "Q?", "reply": "A."}) + "\n")
    cfg = dataset_cfg(
        "instructions",
        path=str(path),
        task_args={"columns": {"prompt": "prompt", "completion": "reply"}},
    )
    with pytest.raises(MedalignError, match="names a column the file does not have.*'prompt'"):
        load_records(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.format=medqq"], "unknown task 'medqq'"),
        (["+dataset.task_args.subjectz=[x]"], "task_args.subjectz: pubmedqa has no such"),
        (["dataset.options=4"], "dataset.options=4: dataset 'pubmedqa' .* does not read"),
        (["rl.algorithm=ppo2", "stage=rl"], "unknown RL algorithm 'ppo2'"),
    ],
)
def test_bad_components_fail_at_start_up(overrides: list[str], message: str) -> None:
    with pytest.raises(MedalignError, match=message):
        check_components(validate(compose(*overrides)))


@pytest.mark.parametrize(
    ("override", "new"),
    [
        ("stage.max_steps=5", "trainer.max_steps"),
        ("eval.run=x", "init_from"),
        ("rl.init_from=x", "init_from"),
        ("checkpoint.every_steps=5", "trainer.save_steps"),
    ],
)
def test_moved_keys_name_their_new_place(override: str, new: str) -> None:
    from medalign.config import check_overrides

    with pytest.raises(MedalignError, match=f"this key moved; use {new}"):
        check_overrides([override])


def test_per_dataset_eval_settings_take_effect() -> None:
    """Issue 12 item 4: 4 options by default (lm-eval's medqa_4options), and
    datasets.medqa.options reaches MedQA whatever the training dataset is."""
    default = validate(compose("stage=pubmedqa"))
    assert eval_dataset_config(default, "medqa").options == 4
    five = validate(compose("stage=pubmedqa", "datasets.medqa.options=5", "eval.limits={medqa: 3}"))
    cfg = eval_dataset_config(five, "medqa")
    records = load_records(cfg, split=cfg.eval_split).records
    assert cfg.options == 5 and cfg.limit == 3 and all(len(r.options) == 5 for r in records)


def test_a_training_file_is_the_training_split_and_eval_comes_from_the_catalogue(
    tmp_path: Path,
) -> None:
    """Issue 12 item 1: dataset.path=<a MedQA file> used to be its own eval set."""
    src = shared_file("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl")
    path = tmp_path / "mine.jsonl"
    path.write_text(src.read_text())
    cfg = validate(compose("stage=medqa", f"dataset.path={path}"))
    evaluated = eval_dataset_config(cfg, "medqa")
    assert evaluated.path is None  # the catalogue's: the examples, or data_root
    from medalign.data.loading import load_training_data

    data = load_training_data(cfg)
    assert len(data.records) == 300 and data.decontaminated == {}


def test_null_medqa_option_is_a_bad_row_not_the_string_none(tmp_path: Path) -> None:
    """Issue 12 item 8."""
    row = {
        "question": "Q?", "options": {"A": "x", "B": None, "C": "z", "D": "w"},
        "answer": None, "answer_idx": "B",
    }  # fmt: skip
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(MedalignError, match="field 'options.B': null or empty option text"):
        load_records(dataset_cfg("medqa", path=str(path), options=4))
    good = dict(row, options={"A": "x", "B": "y", "C": "z", "D": "w"}, answer="y")
    path.write_text(json.dumps(row) + "\n" + json.dumps(good) + "\n")
    data = load_records(dataset_cfg("medqa", path=str(path), options=4, on_bad_row="skip"))
    assert len(data.records) == 1 and data.skipped == {"options.B: null or empty option text": 1}


def test_loglik_prompts_use_the_raw_text_as_lm_eval_does(tmp_path: Path) -> None:
    """Issue 12, whitespace parity: lm-eval's doc_to_text sees the raw dataset text."""
    row = {
        "question": "A  man has\n a cough. ", "options": {"A": " x", "B": "y ", "C": "z", "D": "w"},
        "answer": "y ", "answer_idx": "B",
    }  # fmt: skip
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(row) + "\n")
    cfg = dataset_cfg("medqa", path=str(path), options=4)
    (record,) = load_records(cfg).records
    item = get_task(cfg).loglik_item(record)
    assert item.context == "Question: A  man has\n a cough. \nA.  x\nB. y \nC. z\nD. w\nAnswer:"
    assert (
        get_task(cfg).prompt(record).startswith("Question: A  man has\n a cough.\nOptions:\nA. x")
    )


def test_every_task_has_a_registered_yaml_and_loads_its_examples() -> None:
    cfg = validate(compose())
    check_components(cfg)
    for name, dcfg in cfg.datasets.items():
        assert load_records(dcfg).records, name
        assert get_task(dcfg).name == dcfg.format


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.r=0", "lora.r=0: must be an integer >= 1"),
        ("lora.dropout=2", r"lora.dropout=2.0: must be in \[0, 1\)"),
        ("trainer.learning_rate=-1", "trainer.learning_rate=-1.0: must be > 0"),
        ("trainer.per_device_train_batch_size=0", "per_device_train_batch_size=0: must be >= 1"),
        ("trainer.max_steps=0", "trainer.max_steps=0: must be >= 1, or -1"),
        ("dataset.limit=-1", "dataset.limit=-1: must be >= 1, or null"),
        ("rl.num_generations=1", "rl.num_generations=1: must be >= 2"),
        # a fraction of each earlier stage's rows: refused before the run directory exists
        ("curriculum.replay=1.5", r"curriculum.replay=1.5: must be in \[0, 1\]"),
        ("curriculum.replay=-0.2", r"curriculum.replay=-0.2: must be in \[0, 1\]"),
        (
            "curriculum.stages.medqa.replay=2",
            r"curriculum.stages.medqa.replay=2.0: must be in \[0, 1\]",
        ),
    ],
)
def test_out_of_range_numbers_fail_at_start_up(override: str, message: str) -> None:
    """Issue 13: these used to end in tracebacks after the model loaded, or (limit=-1,
    max_steps=0) to train silently on the wrong amount."""
    with pytest.raises(MedalignError, match=message):
        check_components(validate(compose(override)))


def test_quantized_full_fine_tune_is_refused_at_start_up() -> None:
    with pytest.raises(MedalignError, match="quant=int8 with lora=none"):
        check_components(validate(compose("quant=int8", "lora=none")))


def test_a_dotted_reward_that_does_not_import_fails_at_start_up() -> None:
    cfg = validate(compose("stage=rl", "+reward.weights={tests.nope.fn: 1.0}"))
    with pytest.raises(MedalignError, match="cannot import reward_fn 'tests.nope.fn'"):
        check_components(cfg)


def test_an_unknown_dataset_name_fails_at_start_up_with_a_suggestion() -> None:
    """Found by a new-user trial: an unknown eval set used to fail after training."""
    cfg = validate(compose("stage=medqa", "eval.after_train=true", "eval.datasets=[pubmedqqa]"))
    with pytest.raises(MedalignError, match="eval.datasets: unknown dataset 'pubmedqqa'. Did you"):
        check_components(cfg)
    with pytest.raises(MedalignError, match=r"config dataset.format=medqq: unknown task"):
        check_components(validate(compose("dataset.format=medqq")))


def test_instruction_columns_are_one_override_from_the_command_line() -> None:
    cfg = validate(
        compose(
            "stage=sft",
            "dataset=instructions",
            "dataset.task_args.columns={prompt: question, completion: reply}",
        )
    )
    assert get_task(cfg.dataset).columns == {"prompt": "question", "completion": "reply"}
    default = validate(compose("stage=sft", "dataset=instructions")).dataset
    assert get_task(default).columns == {
        "instruction": "instruction",
        "input": "input",
        "output": "output",
    }


def test_answer_as_text_states_the_option_text_everywhere() -> None:
    """dataset.answer_as=text (cloze): the target, the scored choices, generation parsing
    and the RL reward all use the option's text; the letter form stays lm-eval's."""
    from medalign.data.loading import load_records

    path = str(shared_file("medmcqa", "dev_converted_sample.json"))
    letter = task_for("medmcqa", path=path, rationale=False)
    text = task_for("medmcqa", path=path, rationale=False, answer_as="text")
    record = load_records(text.cfg).records[0]
    options = record.options or {}
    gold_text = options[str(record.answer)].strip()
    assert text.target(record) == f"Final answer: {gold_text}"
    assert letter.target(record) == f"Final answer: {record.answer}"
    item = text.loglik_item(record)
    assert item.choices == [v.strip() for v in options.values()]
    assert item.choices[item.gold] == gold_text and "A." not in item.context
    assert letter.loglik_item(record).choices == list(options)
    assert text.parse(f"Final answer: {gold_text.upper()}.", record) == gold_text
    reference = text.reward_reference(record)
    assert text.correctness(f"Final answer: {gold_text}", reference) == 1.0
    wrong = next(v.strip() for k, v in options.items() if k != record.answer)
    assert text.correctness(f"Final answer: {wrong}", reference) == 0.0
    letters = list(options)
    after = options[letters[(letters.index(str(record.answer)) + 1) % len(letters)]].strip()
    rejected = text.pairs([record], "helpfulness")[0]["rejected"]  # a wrong option, argued
    assert rejected[-1]["content"].rstrip().endswith(f"Final answer: {after}")


def test_reward_names_and_reward_models_are_checked_at_start_up() -> None:
    """Found by a new-user trial: a misspelt reward name, or a reward model RL would need
    and nothing trains, failed only when the RL trainer was built (in a curriculum, after
    every earlier stage had trained)."""
    cfg = validate(compose("stage=rl", "+reward.weights.corectness=1.0"))
    with pytest.raises(
        MedalignError, match="unknown reward 'corectness'. Did you mean 'correctness'"
    ):
        check_components(cfg)
    order = "curriculum.order=[pubmedqa,rl]"
    cfg = validate(compose("experiment=curriculum", order, "reward.weights.helpfulness=0.5"))
    with pytest.raises(MedalignError, match="reward.weights.helpfulness=0.5 needs a trained"):
        check_components(cfg)
    check_components(validate(compose("experiment=curriculum", "reward.weights.helpfulness=0.5")))
