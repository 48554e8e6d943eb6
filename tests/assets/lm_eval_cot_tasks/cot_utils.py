"""lm-eval PR #4081's zero-shot CoT prompt (`medqa_4options_cot_zeroshot`,
`medmcqa_cot_zeroshot`: preprocess_medqa.py / utils_medmcqa.py `doc_to_text_cot`), over
the original files' fields instead of the hub copies' (MedQA: `options` {A..D} and
`answer_idx`; MedMCQA: opa..opd and a 1-indexed `cop`)."""

INSTRUCTION = (
    "First, think step-by-step. End your response with exactly this format:\n"
    "Final Answer: X\n(where X is A, B, C, or D)."
)


def medqa_doc_to_text_cot(doc: dict) -> str:
    answers = "".join(f"{k}. {v}\n" for k, v in doc["options"].items())
    return f"Question: {doc['question']}\n{answers}" + INSTRUCTION


def medqa_doc_to_target_cot(doc: dict) -> str:
    return doc["answer_idx"]


def medmcqa_doc_to_text_cot(doc: dict) -> str:
    options = [doc["opa"], doc["opb"], doc["opc"], doc["opd"]]
    prompt = "Question: " + doc["question"] + "\nChoices:\n"
    for letter, option in zip("ABCD", options, strict=True):
        prompt += f"{letter}. {option}\n"
    return prompt + INSTRUCTION


def medmcqa_doc_to_target_cot(doc: dict) -> str:
    return "ABCD"[int(doc["cop"]) - 1]  # the original files count options from 1
