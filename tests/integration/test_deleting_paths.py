"""Every deleting path removes only what it owns (issue 24, defect 1): the atomic writers
(`save_atomically`, `merge_adapter`) delete only their own `<target>.partial` and
`<target>.old`, never a neighbour of the target."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tree_digest
from tests.run_fixtures import save_adapter, tiny_dir


def _neighbours(parent: Path, target: str) -> dict[str, str]:
    (parent / f"{target}.mine").mkdir(parents=True)
    (parent / f"{target}.mine" / "notes.txt").write_text("keep")
    (parent / f"{target}-old").mkdir()
    (parent / f"{target}-old" / "weights.bin").write_bytes(b"keep")
    (parent / "results.csv").write_text("a,b\n")
    return tree_digest(parent)


def test_the_atomic_writers_leave_their_neighbours(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medalign.models.merge import merge_adapter
    from medalign.stages.sft import save_atomically

    base = tiny_dir()
    save_adapter(base, tmp_path / "src" / "adapter")
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    for name, write in (
        ("adapter", lambda out: save_atomically(model, tokenizer, out)),
        ("merged", lambda out: merge_adapter(base, str(tmp_path / "src" / "adapter"), out)),
    ):
        parent = tmp_path / name
        before = _neighbours(parent, name)
        write(parent / name)
        write(parent / name)  # again: the complete one is replaced, nothing else moves
        assert (parent / name / "config.json").is_file()
        after = tree_digest(parent)
        assert {k: v for k, v in after.items() if not k.startswith(f"{name}/")} == before
