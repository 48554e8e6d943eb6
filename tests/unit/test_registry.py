from __future__ import annotations

import pytest

from medalign import registry
from medalign.errors import MedalignError


def test_registered_names_resolve() -> None:
    from medalign.tasks.pubmedqa import PubMedQA

    assert registry.get("task", "pubmedqa") is PubMedQA
    assert {"grpo", "rloo", "dpo"} <= set(registry.names("rl_algorithm"))
    assert "sft" in registry.names("stage")
    assert {"tiny", "hub"} <= set(registry.names("model_builder"))


def test_unknown_name_lists_registered_names() -> None:
    with pytest.raises(MedalignError) as err:
        registry.get("stage", "sfft")
    assert "unknown stage 'sfft'" in str(err.value)
    assert "sft" in str(err.value)


def test_dotted_path_fallback_imports_any_object() -> None:
    assert registry.get("formatter", "medalign.data.formatting:to_messages").__name__ == (
        "to_messages"
    )
    assert registry.get("formatter", "json.dumps").__name__ == "dumps"


def test_bad_dotted_path_is_a_clear_error() -> None:
    with pytest.raises(MedalignError, match="cannot import formatter 'nope.module:fn'"):
        registry.get("formatter", "nope.module:fn")


def test_a_dotted_task_must_be_a_task_class() -> None:
    """data/ looks Tasks up through the registry (it sits below tasks/), and the registry
    refuses a dotted dataset.format naming anything but a Task subclass."""
    from medalign.data.loading import get_task
    from medalign.tasks.base import check_config
    from tests.conftest import dataset_cfg

    with pytest.raises(MedalignError, match="is not a medalign.tasks.base.Task class"):
        get_task(dataset_cfg("medqa", format="medalign.config:RunConfig"))
    with pytest.raises(MedalignError, match="config dataset.format=json.dumps: task"):
        check_config(dataset_cfg("medqa", format="json.dumps"), "dataset")
    assert get_task(dataset_cfg("medqa", format="medalign.tasks.medqa:MedQA")).name == "medqa"


def test_duplicate_registration_is_refused() -> None:
    """One line naming both modules (a plugin reusing a built-in name used to get a
    traceback blaming medalign's module)."""

    def first() -> None: ...

    def second() -> None: ...

    second.__module__ = "my_plugin.rewards"
    registry.register("test_kind", "a")(first)
    with pytest.raises(
        MedalignError,
        match=r"test_kind 'a' is registered twice, by tests.unit.test_registry "
        r"and by my_plugin.rewards",
    ):
        registry.register("test_kind", "a")(second)
