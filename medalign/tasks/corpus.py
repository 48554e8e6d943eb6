"""Text the model has read, read again during fine-tuning (rehearsal): its pretraining
corpus, a textbook, your own notes. Mixed into an SFT stage it keeps up what only the
reading taught, the way InstructGPT's PPO-ptx mixes pretraining gradients into alignment.

    python -m medalign stage=medmcqa "dataset.mix={medmcqa: 1, corpus: 0.1}" \\
        datasets.corpus.path=my_corpus/
    python -m medalign experiment=world '+curriculum.stages.medqa.mix={corpus: 0.1}'
                                               # the world's textbook, in a curriculum stage

Why it exists: the world's held-out questions ask about diseases only the textbook
describes, so replaying earlier stages' training questions (curriculum.replay) rehearses
facts about other diseases and cannot keep these. Measured on the world, the 150 held-out
MedMCQA questions on a disease's contraindicated drug fell from 0.94 right after their
stage to 0.74 after the safety stage with replay 0.2, and from 0.91 to 0.73 with replay
0.5. Rehearsal of the textbook did not keep them either (0.84 -> 0.75 in the safety
stage), so the world's default does not mix it in (experiments/README.md, 2026-12-08).

A `.txt`/`.md` file is split into documents at blank lines (a paragraph a row, as
stage=pretrain reads it); a JSON Lines file has one document a row in `text_field`. Each
row trains as the reply to an empty user turn in the model's chat template (with the
world model's `plain` template: the paragraph after a newline), the loss on the whole
paragraph: reading, not a question.
The paragraph is also what decontamination checks against the evaluation sets. Used for
training only: it has no gold answers, so it is not an evaluation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from medalign.data.records import BadRows, QARecord
from medalign.data.text_corpus import corpus_files, read_documents
from medalign.registry import register
from medalign.tasks.base import Messages, Task


@register("task", "corpus")
class Corpus(Task):
    name = "corpus"
    arg_defaults: ClassVar[dict[str, Any]] = {"text_field": "text"}  # a JSONL's text column

    def split_file(self, folder: Path) -> Path:
        return folder  # every text file in it: a corpus has no splits

    def read(self, path: Path, bad: BadRows) -> list[QARecord]:
        key = f"{self.key}.task_args"
        records = []
        for file in corpus_files(path, f"{self.key}.path"):
            name = file.relative_to(path) if path.is_dir() else file.name  # unique in a tree
            for i, text in enumerate(read_documents(file, self.args["text_field"], key)):
                if text.strip():  # a JSONL row of blanks is no document
                    records.append(
                        QARecord(id=f"{name}:{i}", question="", context=[text], answer="")
                    )
        return records

    def messages(self, record: QARecord) -> dict[str, Messages]:
        return {
            "prompt": [{"role": "user", "content": ""}],
            "completion": [{"role": "assistant", "content": record.context[0]}],
        }
