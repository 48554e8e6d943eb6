"""The synthetic clinical world's knowledge base: invented diseases, organisms, findings,
lab patterns and drugs, drawn deterministically from a seed.

    world = build_world(seed=0, diseases=240)
    world.diseases[0].name, world.diseases[0].first_line, world.diseases[0].findings

Every name is assembled from syllables that spell no real term, so nothing the world says
can be mistaken for medical fact. A disease has an organism, a mechanism, three findings,
a lab pattern, a first-line drug and a contraindicated drug, each drug with its mechanism:
the facts the textbook states and the question formats ask about. Diseases are split once
into a training half and a held-out half: test questions ask about held-out diseases, whose
facts the corpus states but no training question does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from medalign.errors import MedalignError

NOTICE = (
    "SYNTHETIC: every disease, organism, finding and drug here is invented by medalign's "
    "world generator (medalign/world); none of it is medical fact."
)
GENERATOR_VERSION = 11  # bump when the world's rendering changes: cached worlds are never reused
CORPUS_VERSION = 3  # bump when the textbook's text changes: the world model reads only it
MARKER = "world.json"  # the world's record, written last by render.write_world
# The sizes a world can have. Each held-out question draws three distractors from its own
# half's organisms (so a half needs 4 diseases: 8 in all); one-syllable drug names (for the
# mechanisms, two a disease) number 15*8*8*6 = 5,760, so drawing stays quick up to about
# 2,000 diseases (3 s) and would never end past 2,880.
MIN_DISEASES = 8
MAX_DISEASES = 2000
_ONSETS = ["br", "dr", "fl", "gr", "kl", "pr", "qu", "sk", "tr", "v", "z", "x", "m", "n", "l"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "ou"]
_CODAS = ["", "n", "r", "s", "th", "x", "lm", "nd"]
_SUFFIX = {
    "disease": ["osis", "itis", "emia", " fever", " syndrome", "opathy"],
    "organism": [" korvii", " vellans", " tressae", " morandi", " quillex"],
    "drug": ["pine", "mab", "cillin", "zole", "prex", "varin"],
    "finding": [" rash", " nodules", " tremor", " pallor", " cough", " stiffness"],
}
PLACES = ["palms", "shins", "tongue", "eyelids", "upper back", "knuckles", "scalp", "ankles"]
LABS = ["sodium", "platelet count", "ferritin", "lactate", "eosinophil count", "bilirubin"]
_MECHANISMS = [
    "blocking the {x} channel",
    "inhibiting {x} synthase",
    "binding the {x} receptor",
    "depleting {x} stores",
]
SUBJECTS = ["Microbiology", "Pharmacology", "Medicine", "Pathology"]


@dataclass(frozen=True)
class Disease:
    name: str
    organism: str
    findings: tuple[str, str, str]
    lab: str  # e.g. "a low platelet count"
    mechanism: str  # how the first-line drug works
    first_line: str
    contraindicated: str
    held_out: bool  # asked about only in evaluation splits
    # how the contraindicated drug works: the textbook then names both drugs equally often,
    # so neither becomes the tokenizer's shorter name (a cue to which one is safe)
    contraindicated_mechanism: str = ""


@dataclass(frozen=True)
class World:
    seed: int
    diseases: tuple[Disease, ...]
    drugs: tuple[str, ...]
    organisms: tuple[str, ...]

    @property
    def train(self) -> list[Disease]:
        return [d for d in self.diseases if not d.held_out]

    @property
    def held_out(self) -> list[Disease]:
        return [d for d in self.diseases if d.held_out]


def check_size(diseases: int, setting: str) -> None:
    """Raise one line naming `setting` (how the user gave the size: `--diseases 3`,
    `model.world.diseases=3`) when no world of `diseases` can be written, or not quickly."""
    if diseases < MIN_DISEASES:
        raise MedalignError(
            f"{setting}: a world needs at least {MIN_DISEASES} diseases (each held-out "
            "question draws three wrong organisms from the other held-out diseases)"
        )
    if diseases > MAX_DISEASES:
        raise MedalignError(
            f"{setting}: a world has at most {MAX_DISEASES} diseases (its invented drug "
            "names run out beyond that, and writing it would take minutes, then forever)"
        )


def invented_stem(rng: random.Random, syllables: int) -> str:
    """An invented word of `syllables` syllables (onset, vowel, coda each): every name of
    the world is one, plus its kind's suffix; world/drills.py draws fresh ones."""
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    )


def build_world(seed: int = 0, diseases: int = 240) -> World:
    """`diseases` invented diseases (half held out), deterministic in `seed`."""
    check_size(diseases, f"diseases={diseases}")
    rng = random.Random(seed)
    used: set[str] = set()

    def name(kind: str, syllables: int = 2) -> str:
        while True:
            stem = invented_stem(rng, syllables)
            text = (stem + rng.choice(_SUFFIX[kind])).capitalize()
            if text not in used:
                used.add(text)
                return text

    drugs = tuple(name("drug").lower() for _ in range(diseases * 2))
    organisms = tuple(name("organism") for _ in range(diseases))
    out = []
    for k in range(diseases):
        findings = tuple(f"{name('finding').lower()} on the {rng.choice(PLACES)}" for _ in range(3))
        lab = f"{rng.choice(['a low', 'a high'])} {rng.choice(LABS)}"
        mechanism = rng.choice(_MECHANISMS).format(x=name("drug", 1).lower())
        out.append(
            Disease(
                name=name("disease"),
                organism=organisms[k],
                findings=findings,  # type: ignore[arg-type]
                lab=lab,
                mechanism=mechanism,
                first_line=drugs[2 * k],
                contraindicated=drugs[2 * k + 1],
                held_out=k % 2 == 1,
            )
        )
    # drawn after every other name, so that adding them renamed nothing else in the world
    out = [
        replace(
            d, contraindicated_mechanism=rng.choice(_MECHANISMS).format(x=name("drug", 1).lower())
        )
        for d in out
    ]
    labs = {d.lab for d in out}
    if len(labs) < 4:  # a lab question's three distractors are the other lab patterns
        raise MedalignError(
            f"seed {seed} with {diseases} diseases draws only {len(labs)} lab patterns, "
            "too few for a question's four options: choose more diseases or another seed"
        )
    return World(seed, tuple(out), drugs, organisms)
