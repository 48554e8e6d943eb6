"""Raw text for continued pretraining (stage=pretrain): a `.txt` file, a folder of them, a
JSON Lines file with a text column, or a hub corpus.

    texts, source = read_corpus(cfg.pretrain, data_root)

A `.txt` file is split into documents at blank lines (a paragraph each), so packing
fills every sequence from whole paragraphs; a JSONL row is one document. Bad input is a
MedalignError naming the file and line: a row that is not JSON, has no text column, or
holds something other than a string there.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from medalign.data.files import read_text
from medalign.errors import MedalignError

log = logging.getLogger(__name__)
_PARAGRAPHS = re.compile(r"\n\s*\n")
SUFFIXES = (".txt", ".md", ".jsonl", ".json")


def read_corpus(cfg: Any) -> tuple[list[str], str]:
    """(documents, where they came from) for `cfg` (a PretrainConfig)."""
    if cfg.hub_id:
        return _read_hub(cfg), f"hub:{cfg.hub_id}"
    if not cfg.path:
        raise MedalignError(
            "pretrain.path is not set: give a .txt file, a folder of .txt files, or a JSON "
            "Lines file with a `text` column (or pretrain.hub_id for a hub corpus)"
        )
    path = Path(cfg.path).expanduser()
    texts: list[str] = []
    files = corpus_files(path, "pretrain.path")
    for file in files:
        texts += read_documents(file, cfg.text_field, "pretrain")
    texts = [t for t in texts if t.strip()]
    if cfg.limit is not None:
        texts = texts[: cfg.limit]
    if not texts:
        raise MedalignError(f"pretrain.path: {path} holds no text")
    log.info("pretraining corpus: %d documents from %d file(s) in %s", len(texts), len(files), path)
    return texts, str(path)


def corpus_files(path: Path, setting: str) -> list[Path]:
    """The text files of a corpus: `path` itself, or every .txt/.md/.jsonl/.json file in
    the folder and below, hidden folders and files left out (sorted); a .json file is
    read as JSON Lines. `setting` is the config key a refusal names."""
    if not path.exists():
        raise MedalignError(f"{setting}: no such file or folder: {path}")
    files = (
        sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix in SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )  # not hidden copies (.ipynb_checkpoints/, .git/): each paragraph would train twice
        if path.is_dir()
        else [path]
    )
    if not files:
        raise MedalignError(f"{setting}: {path} holds no {', '.join(SUFFIXES)} files")
    for file in files:
        if not file.is_file():
            raise MedalignError(f"{file}: not a regular file")
    return files


def read_documents(file: Path, field: str, key: str) -> list[str]:
    """The documents of one corpus file: a text file's paragraphs (split at blank lines),
    or a JSON Lines file's `field` column, one a row. `key` is where the settings sit
    (`pretrain`, or a dataset's `task_args`), for the refusals to name."""
    if file.suffix in (".jsonl", ".json"):
        return _read_jsonl(file, field, key)
    text = read_text(file)
    if "\x00" in text:  # valid UTF-8, yet no text file holds NUL: a zeroed or binary file
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MedalignError(
            f"{file}: a binary file, not text (a NUL byte at line {line}); a corpus is "
            ".txt/.md files or JSON Lines with a text column"
        )
    return [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]


def _read_jsonl(file: Path, field: str, key: str) -> list[str]:
    from medalign.data.files import read_jsonl
    from medalign.data.records import BadRows
    from medalign.errors import where

    texts = []
    hint = "each line of a corpus JSONL is one JSON object holding its text"
    for row_key, row in read_jsonl(file, BadRows(str(file), "error", hint=hint)):
        if not isinstance(row.get(field), str):
            found = "missing" if field not in row else f"not text ({type(row[field]).__name__})"
            raise MedalignError(
                f"{where(file, row_key, field)}: {found}; {key}.text_field names the column "
                "holding the text"
            )
        texts.append(row[field])
    return texts


def _read_hub(cfg: Any) -> list[str]:
    from datasets import load_dataset

    try:
        rows = load_dataset(cfg.hub_id, split=cfg.split)
    except Exception as exc:  # offline, no such corpus: one line, not the hub's traceback
        raise MedalignError(f"pretrain.hub_id={cfg.hub_id}: cannot load it ({exc})") from None
    if cfg.text_field not in rows.column_names:
        raise MedalignError(
            f"pretrain.hub_id={cfg.hub_id}: no column {cfg.text_field!r}; columns: "
            f"{', '.join(rows.column_names)}"
        )
    texts = [t for t in rows[cfg.text_field] if isinstance(t, str)]
    return texts[: cfg.limit] if cfg.limit is not None else texts
