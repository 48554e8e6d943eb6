"""Copy drills: text in which a span comes back later in the same document.

The textbook states every fact once per sentence and never repeats a span within one, so a
model that has read only it never learns to copy from its context (an induction head): it
opens a MedQA rationale with findings it memorized, not the patient's, and names another
disease's drug (experiments/README.md, 2026-12-06). Natural text repeats itself (a case
report restates its findings), which is where real models learn to copy. These drills
give the world model that experience, on names it cannot have memorized: every drill is
drawn fresh, so the only way to predict its second half is to copy the first.

    echo_drills(n, seed)            "Say: <3-8 invented words>. Again: <the same words>."
    copy_drills(world, n, seed)     echo lists, case restatements, option lookups

None of them states a fact: a restated case names no disease, an option lookup no answer.
"""

from __future__ import annotations

import random

from medalign.world.knowledge import LABS, PLACES, World, invented_stem


def _word(rng: random.Random) -> str:
    return invented_stem(rng, rng.choice((1, 2, 3)))


def _echo(rng: random.Random) -> str:
    words = " ".join(_word(rng) for _ in range(rng.randint(3, 8)))
    return f"Say: {words}. Again: {words}."


def echo_drills(n: int, seed: int) -> list[str]:
    """`n` echo lists of fresh invented words: the drill an induction head forms on."""
    rng = random.Random(seed)
    return [_echo(rng) for _ in range(n)]


def copy_drills(world: World, n: int, seed: int) -> list[str]:
    """`n` drills in the world's words, a third each (in expectation): echo lists; a case
    that is restated (three findings at random, half of them invented: no disease has that
    triple); four of the world's drugs as options, one of them looked up by name."""
    rng = random.Random(seed)
    findings = [f for d in world.diseases for f in d.findings]
    kinds = sorted({f.split(" on the ")[0].split()[-1] for f in findings})
    letters = "ABCD"

    def finding() -> str:
        if rng.random() < 0.5:
            return rng.choice(findings)
        return f"{_word(rng)}{_word(rng)} {rng.choice(kinds)} on the {rng.choice(PLACES)}"

    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 1 / 3:
            out.append(_echo(rng))
        elif kind < 2 / 3:
            f = [finding() for _ in range(3)]
            case = f"{f[0]}, {f[1]} and {f[2]}"
            who = f"A {rng.randint(18, 80)}-year-old {rng.choice(['man', 'woman'])}"
            lab = f"{rng.choice(['a low', 'a high'])} {rng.choice(LABS)}"
            out.append(
                f"{who} comes to the physician with {case}. Laboratory studies show {lab}. "
                f"Restated: a patient with {case}."
            )
        else:
            options = rng.sample(world.drugs, 4)
            k = rng.randrange(4)
            shown = " ".join(f"{letters[j]}: {options[j]}" for j in range(4))
            out.append(f"Options: {shown}. {options[k]} is option {letters[k]}.")
    return out
