"""A new multiple-choice dataset added as one YAML (tests/assets/conf/dataset/toy_exam.yaml,
self-written files with columns unlike any built-in format): it trains, is evaluated by
log-likelihood, gives RL prompts and reward pairs, and joins a curriculum as an extra
stage, with no line of medalign changed (issue #23)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from tests.conftest import compose, finish_cli, start_cli

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(autouse=True)
def _toy_exam_on_the_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALIGN_CONFIG_PATH", str(ASSETS / "conf"))
    monkeypatch.setenv("MEDALIGN_TOY_EXAM", str(ASSETS / "toy_exam"))


def _medalign(out: Path, *args: str) -> None:
    """`python -m medalign debug=fast ARGS` into `out`, which must exit 0."""
    finish_cli(start_cli("debug=fast", *args, f"hydra.run.dir={out}"))


def test_the_yaml_dataset_joins_the_catalogue_and_reads_its_columns() -> None:
    from medalign.config import validate
    from medalign.data.loading import eval_dataset_config, get_task, load_records

    cfg = validate(compose("stage=sft", "dataset=toy_exam", "eval.datasets=[toy_exam]"))
    assert "toy_exam" in cfg.datasets  # no line in conf/config.yaml
    train = load_records(cfg.dataset).records
    test_cfg = eval_dataset_config(cfg, "toy_exam")
    test = load_records(test_cfg, split=test_cfg.eval_split).records
    assert (len(train), len(test)) == (14, 6)
    rows = [json.loads(line) for line in (ASSETS / "toy_exam" / "train.jsonl").open()]
    for record, row in zip(train, rows, strict=True):  # key is 1-based: A = choice_1
        assert record.id == row["qid"]
        assert record.options[record.answer] == row[f"choice_{row['key']}"]
        assert record.meta["subject"] == row["area"] and record.rationale == row["why"]
    task = get_task(cfg.dataset)
    item = task.loglik_item(train[0])  # lm-eval's "Question: ...\nA. ...\nAnswer:" style
    assert item.context.endswith("\nD. the gill plate\nAnswer:") and item.choices == list("ABCD")
    assert item.gold == "ABCD".index(train[0].answer)
    assert task.reward_reference(train[0]) == {"gold": train[0].answer, "choices": list("ABCD")}
    pairs = task.pairs(train, "helpfulness")
    assert len(pairs) == 14 and all(p["chosen"] != p["rejected"] for p in pairs)


def test_a_bad_row_and_a_wrong_column_name_are_named(tmp_path: Path) -> None:
    from medalign.config import validate
    from medalign.data.loading import load_records

    row = {"qid": "q", "stem": "s?", "choice_1": "a", "choice_2": "b", "choice_3": "c"}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({**row, "choice_4": "d", "key": 9, "area": "x", "why": "y"}) + "\n")
    cfg = validate(compose("stage=sft", "dataset=toy_exam", f"dataset.path={path}"))
    with pytest.raises(
        MedalignError, match=r"row 'line 1 \(id q\)', field 'key': 9 is none of the labels"
    ):
        load_records(cfg.dataset)
    path.write_text(json.dumps({**row, "key": 1, "area": "x", "why": "y"}) + "\n")
    with pytest.raises(MedalignError, match=r"task_args.options names the column 'choice_4'"):
        load_records(cfg.dataset)


def test_the_yaml_dataset_trains_and_is_evaluated(tmp_path: Path) -> None:
    """`stage=sft dataset=toy_exam`: no stage YAML of its own; evaluated by log-likelihood."""
    out = tmp_path / "run"
    _medalign(
        out, "stage=sft", "dataset=toy_exam", "eval.after_train=true", "eval.datasets=[toy_exam]"
    )
    manifest = json.loads((out / "manifest.json").read_text())["stages"][0]
    assert manifest["status"] == "done" and manifest["name"] == "sft"
    assert 0.0 <= manifest["metrics"]["eval/toy_exam/acc"] <= 1.0
    predictions = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").open()]
    assert {p["id"] for p in predictions} == {f"zorb-{i}" for i in range(14, 20)}  # test split


@pytest.mark.slow  # the whole default curriculum with one more stage (about 2 min)
def test_the_yaml_dataset_joins_experiment_curriculum_as_an_extra_stage(tmp_path: Path) -> None:
    out = tmp_path / "curriculum"
    order = "curriculum.order=[pubmedqa,medmcqa,medqa,toy_exam,reward,rl]"
    toy = [f"{key}=[medqa,toy_exam]" for key in ("eval.datasets", "reward.datasets")]
    # RL prompts: the safety reward (weight 0.5 here) scores the safety requests only
    toy.append("rl.datasets=[medqa,toy_exam,medsafetybench]")
    _medalign(out, "experiment=curriculum", order, *toy)
    manifest = json.loads((out / "manifest.json").read_text())
    names = [s["name"] for s in manifest["stages"]]
    assert names == ["before", "pubmedqa", "medmcqa", "medqa", "toy_exam", "reward", "rl"]
    assert all(s["status"] == "done" for s in manifest["stages"])
    assert "toy_exam" in (out / "results.md").read_text()
    toy = next(s for s in manifest["stages"] if s["name"] == "toy_exam")
    assert toy["data"]["rows_by_dataset"]["toy_exam"] == 14


def test_a_curriculum_stage_is_any_dataset_and_a_misspelt_one_fails_at_start_up() -> None:
    from medalign.checks import check_components
    from medalign.config import validate
    from medalign.curriculum import _stage_overrides
    from medalign.stages.spec import curriculum_spec

    order = "curriculum.order=[pubmedqa,toy_exam,reward,rl]"
    cfg = validate(compose("experiment=curriculum", order))
    check_components(cfg)  # toy_exam has no stage YAML and no curriculum.stages line
    assert _stage_overrides(cfg, "toy_exam", curriculum_spec("toy_exam")) == [
        *("stage=sft", "dataset=toy_exam", "stage.name=toy_exam")
    ]
    cfg = validate(compose("experiment=curriculum", "curriculum.order=[pubmedqa,toy_exma]"))
    with pytest.raises(MedalignError, match="curriculum.order: unknown dataset 'toy_exma'. Did"):
        check_components(cfg)


def _load(path: Path, *task_args: str):
    from medalign.config import validate
    from medalign.data.loading import load_records

    cfg = validate(compose("stage=sft", "dataset=toy_exam", f"dataset.path={path}", *task_args))
    return load_records(cfg.dataset).records


def test_an_answer_that_is_an_options_text_is_never_read_as_an_index(tmp_path: Path) -> None:
    """Found by a new-user trial: with numbers as options, the answer "3" was read as the
    index 3 (gold D, the option "5"), and "4" was refused as no option at all."""
    list_args = ("dataset.task_args.options=choices", "dataset.task_args.answer=correct")
    row = {"qid": "q", "stem": "How many?", "area": "x", "why": "y"}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({**row, "choices": ["1", "2", "3", "4"], "correct": "4"}) + "\n")
    assert _load(path, *list_args)[0].answer == "D"  # the text "4" (index 4 is out of range)
    path.write_text(json.dumps({**row, "choices": ["2", "3", "4", "5"], "correct": "3"}) + "\n")
    with pytest.raises(MedalignError, match=r"'3' reads two ways \(as text: B, as index: C\)"):
        _load(path, *list_args)  # answer_base 1 in toy_exam: index 3 = C; never guessed
    assert _load(path, *list_args, "dataset.task_args.answer_is=text")[0].answer == "B"
    assert _load(path, *list_args, "dataset.task_args.answer_is=index")[0].answer == "C"


def test_a_csv_cell_may_hold_the_options_as_a_json_list(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('qid,stem,choices,correct\nq1,Which?,"[""Liver"", ""Lung"", ""Skin""]",Lung\n')
    args = ("dataset.task_args.options=choices", "dataset.task_args.answer=correct")
    none = ("dataset.task_args.subject=null", "dataset.task_args.explanation=null")
    (record,) = _load(path, *args, *none)
    assert record.options == {"A": "Liver", "B": "Lung", "C": "Skin"} and record.answer == "B"


def test_a_bad_row_is_named_by_its_line_and_its_own_id(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    options = {f"choice_{k}": f"o{k}" for k in range(1, 5)}
    path.write_text(json.dumps({"qid": "q17", "stem": "", **options, "key": 1}) + "\n")
    none = ("dataset.task_args.subject=null", "dataset.task_args.explanation=null")
    with pytest.raises(MedalignError, match=r"row 'line 1 \(id q17\)', field 'stem'"):
        _load(path, *none)


def test_one_file_for_training_and_evaluation_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new-user trial: a YAML whose `path` is one file trained and evaluated on
    the same rows; and a dataset of one's own is decontaminated against its own test
    split even when `decontaminate_against` does not name it."""
    from medalign.config import validate
    from medalign.data.loading import decontamination_configs, load_training_data

    (tmp_path / "dataset").mkdir()
    one_file = ASSETS / "toy_exam" / "train.jsonl"
    yaml = (ASSETS / "conf" / "dataset" / "toy_exam.yaml").read_text()
    yaml = yaml.replace("name: toy_exam", "name: one_file_exam").replace(
        "path: ${oc.env:MEDALIGN_TOY_EXAM,tests/assets/toy_exam}", f"path: {one_file}"
    )
    (tmp_path / "dataset" / "one_file_exam.yaml").write_text(yaml)
    monkeypatch.setenv("MEDALIGN_CONFIG_PATH", f"{ASSETS / 'conf'}:{tmp_path}")
    cfg = validate(compose("stage=sft", "dataset=one_file_exam"))
    with pytest.raises(MedalignError, match=r"one_file_exam.*one file, read for training"):
        load_training_data(cfg)
    cfg = validate(compose("stage=sft", "dataset=toy_exam"))
    assert "toy_exam" in [c.name for c in decontamination_configs(cfg)]
    assert "toy_exam" not in cfg.dataset.decontaminate_against


def test_a_curriculum_evaluates_the_datasets_it_trains_on() -> None:
    """Found by a new-user trial: a stage on a dataset of one's own was trained but, left
    out of eval.datasets, never scored: the results table had no column for it."""
    from medalign.config import validate
    from medalign.curriculum import _own_columns

    order = "curriculum.order=[pubmedqa,toy_exam,rl]"
    cfg = validate(compose("experiment=curriculum", order, "eval.datasets=[medqa]"))
    assert _own_columns(cfg) == "eval.datasets=[medqa,pubmedqa,toy_exam]"
    every = "eval.datasets=[pubmedqa,toy_exam]"
    assert _own_columns(validate(compose("experiment=curriculum", order, every))) is None


def test_command_line_mistakes_about_datasets_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new-user trial: each of these was a multi-line Hydra error."""
    from medalign.compose import check_choices

    with pytest.raises(MedalignError, match=r"dataset=toy_exma: no such dataset config. Did you"):
        check_choices(["dataset=toy_exma"])
    with pytest.raises(
        MedalignError, match=r"so set its keys with a \+: \+datasets.toy_exam.limit"
    ):
        check_choices(["datasets.toy_exam.limit=3"])
    check_choices(["dataset=toy_exam", "+datasets.toy_exam.limit=3", "datasets.medqa.limit=3"])
    monkeypatch.setenv("MEDALIGN_CONFIG_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(MedalignError, match="MEDALIGN_CONFIG_PATH: .*nowhere is not a folder"):
        check_choices([])


def test_a_task_args_typo_and_a_misnamed_yaml_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the second new-user trial: `dataset.task_args.<typo>` was Hydra's struct
    error, and `dataset=<file>` whose YAML says another `name:` trained under that name."""
    from medalign.compose import check_choices

    with pytest.raises(
        MedalignError,
        match=r"dataset.task_args has no key 'questoin'. Did you mean 'question'\?.* \+dataset",
    ):
        check_choices(["dataset=toy_exam", "dataset.task_args.questoin=stem"])
    check_choices(["dataset=toy_exam", "dataset.task_args.question=stem"])
    check_choices(["dataset=toy_exam", "+dataset.task_args.my_own=1"])  # a Task of your own
    folder = tmp_path / "conf" / "dataset"
    folder.mkdir(parents=True)
    text = (ASSETS / "conf" / "dataset" / "toy_exam.yaml").read_text()
    (folder / "toy_exam2.yaml").write_text(text.replace("name: toy_exam", "name: glimmer"))
    monkeypatch.setenv("MEDALIGN_CONFIG_PATH", f"{tmp_path / 'conf'}{os.pathsep}{ASSETS / 'conf'}")
    with pytest.raises(MedalignError, match=r"dataset=toy_exam2: its YAML says name: glimmer"):
        check_choices(["dataset=toy_exam2"])
