"""lm-evaluation-harness as a second evaluation backend: any lm-eval task, on any run's model,
folded into medalign's own reports.

    python -m medalign stage=eval eval.backend=lm_eval \\
        eval.lm_eval.tasks=[mmlu_clinical_knowledge,mmlu_anatomy] init_from=runs/<date>/<run>
    python -m medalign stage=eval eval.backend=lm_eval eval.lm_eval.tasks=[my_task] \\
        eval.lm_eval.include_path=/data/lm_eval_tasks eval.lm_eval.include_defaults=false

Why a second backend: the built-in scorer (eval/choice.py) knows the project's medical
formats and is faster, but the harness has hundreds of tasks. lm-eval runs here exactly
as its own CLI would (its `HFLM`, its `TaskManager`, `simple_evaluate`), offline: tasks
come from its installed folders and from `include_path` (local YAMLs over local files).
The model is lm-eval's HF model built from the directories `init_from` resolves to (the
base or merged model as `pretrained=`, a LoRA adapter as `peft=`), or, after training
and for quantized models, the model medalign already loaded. Results become the same
`results.json` entries, predictions, summary rows and `eval/<task>/<metric>` metrics as the
built-in evaluation (`fold_results`). `bench/bench_lmeval.py` drives the same functions.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from pathlib import Path
from typing import Any

from medalign.errors import MedalignError

log = logging.getLogger(__name__)

INSTALL_HINT = 'eval.backend=lm_eval needs lm-evaluation-harness: pip install -e ".[lm_eval]"'
# Top-level keys of an installed task YAML that name its data (replaced by `local_task_yaml`).
DATA_KEYS = (
    "task",
    "tag",
    "dataset_path",
    "dataset_name",
    "dataset_kwargs",
    "training_split",
    "validation_split",
    "test_split",
    "fewshot_split",
)


def require_lm_eval() -> Any:
    """The `lm_eval` module, or one line saying how to install it."""
    try:
        import lm_eval
    except ImportError:
        raise MedalignError(INSTALL_HINT) from None
    return lm_eval


def task_manager(include_path: str | None, include_defaults: bool = True) -> Any:
    """lm-eval's TaskManager over its own task folders and `include_path` (comma-separated
    folders). Indexing every installed task takes ~20 s on 2 cores; include_defaults=False
    indexes only the local folders."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    paths = [p.strip() for p in (include_path or "").split(",") if p.strip()]
    for path in paths:
        if not Path(path).expanduser().is_dir():
            raise MedalignError(
                f"config eval.lm_eval.include_path={include_path}: {path} is not a directory "
                "(a folder of lm-eval task YAMLs)"
            )
    if not paths and not include_defaults:
        raise MedalignError(
            "config eval.lm_eval.include_defaults=false needs eval.lm_eval.include_path "
            "(a folder of task YAMLs): otherwise there is no task to run"
        )
    return TaskManager(
        include_path=[str(Path(p).expanduser()) for p in paths] or None,
        include_defaults=include_defaults,
    )


def check_tasks(manager: Any, tasks: list[str]) -> None:
    """Every name is an lm-eval task, group or tag (glob patterns allowed), else one error
    listing the close names."""
    if not tasks:
        raise MedalignError(
            "config eval.lm_eval.tasks is empty: name lm-eval tasks, e.g. "
            "eval.lm_eval.tasks=[mmlu_clinical_knowledge,mmlu_anatomy]"
        )
    known = manager.all_tasks
    for name in tasks:
        if manager.match_tasks([name]):
            continue
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        hint = f" Close names: {', '.join(close)}." if close else ""
        where = "lm-eval's task folders"
        if manager.include_path:
            where += f" and eval.lm_eval.include_path={manager.include_path}"
        raise MedalignError(
            f"config eval.lm_eval.tasks: unknown lm-eval task {name!r} (looked in {where})."
            f"{hint} `lm-eval list tasks` lists them all."
        )


def hf_model(
    pretrained: str | Any,
    *,
    tokenizer: str | Any | None = None,
    peft: str | None = None,
    dtype: str = "float32",
    batch_size: int = 16,
    add_bos_token: bool | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """lm-eval's HF model: `pretrained` a directory/hub id (with an optional `peft`
    adapter), or an already loaded model (then `tokenizer` is the loaded tokenizer)."""
    require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    kwargs: dict[str, Any] = {"batch_size": batch_size, "tokenizer": tokenizer}
    if add_bos_token is not None:
        kwargs["add_bos_token"] = add_bos_token
    if isinstance(pretrained, str):
        import torch

        kwargs.update(
            dtype=dtype,
            device="cuda" if torch.cuda.is_available() else "cpu",
            peft=peft,
            trust_remote_code=trust_remote_code,
        )
    return HFLM(pretrained=pretrained, **kwargs)


def run_tasks(
    lm: Any,
    manager: Any,
    tasks: list[str],
    *,
    limit: int | None = None,
    num_fewshot: int | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    apply_chat_template: bool = False,
) -> dict[str, Any]:
    """`lm_eval.simple_evaluate` with every sample logged (what `fold_results` reads);
    `apply_chat_template`: each prompt as the user's turn of the model's chat template
    (eval.mode=cot, as the built-in CoT scorer asks it)."""
    lm_eval = require_lm_eval()
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        task_manager=manager,
        num_fewshot=num_fewshot,
        limit=limit,
        log_samples=True,
        apply_chat_template=apply_chat_template,
        bootstrap_iters=bootstrap,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


_MANAGERS: dict[tuple[str | None, bool], Any] = {}


def check_config(ecfg: Any) -> Any:
    """Start-up check of eval.lm_eval (installed, folders exist, every task known); the
    TaskManager it builds is kept for the evaluation itself."""
    lcfg = ecfg.lm_eval
    if not lcfg.tasks:
        check_tasks(None, [])
    key = (lcfg.include_path, lcfg.include_defaults)
    if key not in _MANAGERS:
        _MANAGERS[key] = task_manager(lcfg.include_path, lcfg.include_defaults)
    check_tasks(_MANAGERS[key], list(lcfg.tasks))
    return _MANAGERS[key]


def evaluate(
    cfg: Any, point: Any = None, model: Any = None, tokenizer: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """(results, predictions, base) of eval.lm_eval.tasks on the model: `model` and
    `tokenizer` when given (after training), else what `point` (init_from) resolves to,
    built by lm-eval itself (pretrained=<base or merged dir>, peft=<adapter>) unless
    the model is quantized (then medalign loads it, with its quantization)."""
    from medalign.models.init_from import base_source, load_model

    ecfg = cfg.eval
    manager = check_config(ecfg)
    base = base_source(point, cfg.model)
    common = {"batch_size": ecfg.batch_size, "add_bos_token": ecfg.add_bos_token}
    if model is None and cfg.quant.mode == "none":
        adapter = point.adapter if point is not None else None
        own = adapter and Path(adapter, "tokenizer_config.json").is_file()
        log.info("lm-eval HF model: pretrained=%s peft=%s", base, adapter)
        lm = hf_model(
            base,
            tokenizer=adapter if own else base,
            peft=adapter,
            dtype="auto" if cfg.model.dtype == "auto" else cfg.model.dtype,
            trust_remote_code=cfg.model.trust_remote_code,
            **common,
        )
    else:
        if model is None:
            model, tokenizer, base = load_model(cfg, point)
        model.eval()
        lm = hf_model(model, tokenizer=tokenizer, **common)
    out = run_tasks(
        lm,
        manager,
        list(ecfg.lm_eval.tasks),
        limit=ecfg.limit,
        num_fewshot=ecfg.lm_eval.num_fewshot,
        seed=ecfg.seed,
        bootstrap=ecfg.bootstrap,
        apply_chat_template=ecfg.mode == "cot"
        and bool(getattr(lm.tokenizer, "chat_template", None)),
    )
    results, predictions = fold_results(out, ecfg.bootstrap, ecfg.seed)
    return results, predictions, base


def samples_of(out: dict[str, Any], task: str, filter_key: str | None = None) -> list[dict]:
    """A task's logged samples in document order (one filter: its first by default)."""
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    keys = list(dict.fromkeys(s["filter"] for s in samples))
    wanted = filter_key or (keys[0] if keys else None)
    return [s for s in samples if s["filter"] == wanted]


def loglik_scores(out: dict[str, Any], task: str) -> list[list[float]]:
    """Per-question, per-choice log-likelihoods of a multiple-choice task."""
    return [[float(r[0]) for r in s["filtered_resps"]] for s in samples_of(out, task)]


def fold_results(
    out: dict[str, Any], bootstrap: int = 1000, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results by task, per-example predictions) in the built-in evaluation's shapes:
    `{"n", "split", "mode": "lm_eval", "source", "metrics": {name: {"value", "n", "ci"}}}`.

    Mean metrics get the built-in bootstrap interval from the per-sample values; others
    keep lm-eval's aggregate with ±1.96 stderr. Filters other than "none" are suffixed
    (`exact_match_strict_match`). Groups are entries of their own (lm-eval's aggregate)."""
    from medalign.eval import metrics as M

    version = _version()
    results: dict[str, Any] = {}
    predictions: list[dict[str, Any]] = []
    for task, raw in out["results"].items():
        if task not in out.get("samples", {}):
            continue
        config = out.get("configs", {}).get(task, {})
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        metrics: dict[str, Any] = {}
        for metric, filter_key, value, stderr in _aggregates(raw):
            per_sample = [s.get(metric) for s in samples if s["filter"] == filter_key]
            name = metric_name(metric, filter_key)
            if _is_mean(per_sample, value):
                metrics[name] = M.with_ci([float(v) for v in per_sample], bootstrap, seed)
            else:
                metrics[name] = _with_stderr(value, stderr, len(per_sample))
        n = len(samples_of(out, task))
        results[task] = {
            "n": n,
            "split": config.get("test_split") or config.get("validation_split") or "",
            "mode": "lm_eval",
            "source": f"lm-eval {version} task {task}",
            "num_fewshot": out.get("n-shot", {}).get(task),
            "metrics": metrics,
        }
        predictions += [_prediction(task, s, config) for s in samples]
    for group, raw in (out.get("groups") or {}).items():
        subtasks = (out.get("group_subtasks") or {}).get(group, [])
        metrics = {
            metric_name(metric, filter_key): _with_stderr(
                value, stderr, sum(results.get(t, {}).get("n", 0) for t in subtasks)
            )
            for metric, filter_key, value, stderr in _aggregates(raw)
        }
        if metrics:
            n = sum(results.get(t, {}).get("n", 0) for t in subtasks)
            results[group] = {
                "n": n,
                "split": "",
                "mode": "lm_eval",
                "source": f"lm-eval {version} group {group} ({', '.join(subtasks)})",
                "metrics": metrics,
            }
    return results, predictions


def metric_name(metric: str, filter_key: str) -> str:
    """`acc` for lm-eval's "acc,none"; `exact_match_strict_match` for another filter."""
    if filter_key in ("none", ""):
        return metric
    return f"{metric}_{re.sub(r'[^A-Za-z0-9]+', '_', filter_key).strip('_')}"


def _aggregates(raw: dict[str, Any]) -> list[tuple[str, str, float, Any]]:
    """(metric, filter, value, stderr) for every numeric "metric,filter" entry."""
    found = []
    for key, value in raw.items():
        metric, sep, filter_key = key.partition(",")
        if not sep or metric.endswith("_stderr") or not isinstance(value, int | float):
            continue
        found.append((metric, filter_key, float(value), raw.get(f"{metric}_stderr,{filter_key}")))
    return found


def _is_mean(values: list[Any], value: float) -> bool:
    if not values or not all(isinstance(v, int | float) for v in values):
        return False
    return math.isclose(sum(values) / len(values), value, rel_tol=1e-9, abs_tol=1e-12)


def _with_stderr(value: float, stderr: Any, n: int) -> dict[str, Any]:
    if isinstance(stderr, int | float) and math.isfinite(stderr):
        return {"value": value, "ci": [value - 1.96 * stderr, value + 1.96 * stderr], "n": n}
    return {"value": value, "ci": [value, value], "n": n}


def _prediction(task: str, sample: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """One logged sample as a predictions.jsonl row; log-likelihood tasks keep every
    choice's log-likelihood (as the built-in rows do)."""
    row: dict[str, Any] = {
        "dataset": task,
        "id": sample["doc_id"],
        "filter": sample["filter"],
        **{m: sample.get(m) for m in sample.get("metrics", [])},
    }
    row["scores"] = {
        m: float(v)
        for m in sample.get("metrics", [])
        if isinstance(v := sample.get(m), int | float) and not isinstance(v, bool)
    }
    responses = sample["filtered_resps"]
    if config.get("output_type") == "multiple_choice":
        choices = [str(args[1]) for args in sample["arguments"]]
        names = [c.removeprefix(str(config.get("target_delimiter", " "))) for c in choices]
        ll = [float(r[0]) for r in responses]
        best = max(range(len(ll)), key=ll.__getitem__)
        target = sample["target"]
        gold = names[target] if isinstance(target, int) and 0 <= target < len(names) else target
        row.update(gold=gold, predicted=names[best], loglik=dict(zip(names, ll, strict=True)))
    else:
        row.update(target=_plain(sample["target"]), response=_plain(responses))
    return row


def _plain(value: Any) -> Any:
    """JSON-safe: lists/tuples of plain values stay, anything else becomes its str."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return "?"


def strip_data_keys(text: str) -> str:
    """A task YAML (or an included template) without its data keys (DATA_KEYS, quoted or
    not, with their continuation lines): what is left is lm-eval's prompt, choices, target
    and metrics."""
    kept, dropping = [], False
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and dropping:
            continue
        key = line.split(":", 1)[0].strip().strip("\"'")
        dropping = bool(line[:1].strip()) and ":" in line and key in DATA_KEYS
        if not dropping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def local_task_yaml(installed: Path, name: str, data_file: Path, split: str = "test") -> str:
    """An installed lm-eval task YAML re-pointed at a local JSON file of its rows, as task
    `name`: only the data keys change (`strip_data_keys`)."""
    head = [
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    {split}: {data_file}",
        f"test_split: {split}",
    ]
    return "\n".join(head) + "\n" + strip_data_keys(installed.read_text())
