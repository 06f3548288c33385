"""A seeded toy world in MuSiQue-Ans schema, for the offline tiny preset.

Each question gets freshly drawn facts (person -> city -> country -> leader -> spouse),
so memorising facts is useless and only reading the context answers it. Paragraphs
are compact ("P born C .") because a tiny model learns such one-step copies in
minutes while verbose prose stays at chance (measured on CPU when the toy world was designed).

Every answer entity has one alias (its syllables swapped: "Kerak" -> "Rakke"), listed in
`answer_aliases`. In a fixed share of questions (`ALIAS_RATE`, decided by a hash of the
fact chain, not the record RNG, so the drawn facts are the same as without aliases) the
last supporting paragraph names the answer by its alias, and the gold reasoning trace
copies that form: a model that reads its context then answers with the alias, which is
right only through `answer_aliases` (as "U.S." is for "United States" in MuSiQue).

Records follow MuSiQue-Ans exactly: `id` (`2hop__…`, `3hop1__…`, `4hop1__…`),
20 `paragraphs` with `idx`, `title`, `paragraph_text`, `is_supporting`,
`question`, `question_decomposition` (`#1` references), `answer`, `answer_aliases`,
`answerable`.
"""
from __future__ import annotations

import random

_SYL_A = ["ba", "ke", "lo", "mi", "nu", "ra", "si", "to", "vu", "za", "de", "fi", "go", "hu", "pe"]
_SYL_B = ["rak", "len", "dor", "mis", "tan", "vel", "bor", "kin", "sul", "pex", "nom", "gat", "ril", "wen", "zot"]

# (relation word in the paragraph, decomposition phrase, entity kind of the object)
HOPS = [("born", "place of birth", "city"), ("in", "country", "country"), ("led", "head of state", "leader"),
        ("wed", "spouse", "spouse")]
ALIAS_RATE = 0.25
QUESTION_TEMPLATES = {
    2: "In which country was {p} born ?",
    3: "Who leads the country where {p} was born ?",
    4: "Who is the spouse of the leader of the country where {p} was born ?",
}


def entity_names(kind: str, count: int, seed: int = 0) -> list[str]:
    """Distinct pseudo-word names (capitalised), fixed for a (kind, seed)."""
    rng = random.Random(f"{kind}-{seed}")
    pool = sorted({(a + b).capitalize() for a in _SYL_A for b in _SYL_B})
    rng.shuffle(pool)
    if count > len(pool):
        raise ValueError(f"toy world: {count} {kind} names requested, at most {len(pool)} available")
    return pool[:count]


def default_entities(sizes: dict[str, int]) -> dict[str, list[str]]:
    """Disjoint name lists per kind (people, city, country, leader, spouse)."""
    kinds = ["person", "city", "country", "leader", "spouse"]
    pool = entity_names("all", sum(sizes[k] for k in kinds))
    out, start = {}, 0
    for k in kinds:
        out[k] = pool[start : start + sizes[k]]
        start += sizes[k]
    return out


def alias(name: str) -> str:
    """The alias of an entity name: its two syllables swapped ("Kerak" -> "Rakke"). Names are a
    2-letter then a 3-letter syllable, so no alias equals a name or contains one."""
    return (name[2:] + name[:2]).capitalize()


def uses_alias(chain: list[str]) -> bool:
    """Whether a question's context names its answer by the alias (a hash of the chain, no RNG draw)."""
    return random.Random("alias-" + "|".join(chain)).random() < ALIAS_RATE


def fact_paragraph(subject: str, relation: str, obj: str) -> tuple[str, str]:
    return subject, f"{subject} {relation} {obj} ."


def cot_answer(chain: list[str], hops: int) -> str:
    """The reasoning trace the tiny model is pre-trained to produce, ending in SoLoPO's format."""
    steps = " ".join(f"{chain[i]} {HOPS[i][0]} {chain[i + 1]} ." for i in range(hops))
    return f"{steps} The answer is: {chain[hops]}"


def reference_traces(rec: dict, others: list[dict], rng: random.Random) -> list[str]:
    """The record's gold reasoning trace and the same trace ending in another record's answer (wrong).

    For backbones that cannot answer yet (random weights in the paper-preset rehearsal, a briefly
    pre-trained one in the GPU check): added to their samples, they give every question one right and
    one wrong response, so pairs exist and the pair selection downstream is the project's own."""
    wrong = [r["answer"] for r in others if r["answer"] != rec["answer"]]
    head, _, _ = rec["cot"].rpartition("The answer is:")
    return [rec["cot"], f"{head}The answer is: {rng.choice(wrong)}"]


def make_record(rng: random.Random, entities: dict[str, list[str]], hops: int, uid: int,
                num_paragraphs: int = 20) -> dict:
    """One MuSiQue-schema question with its own freshly drawn facts."""
    kinds = ["person", "city", "country", "leader", "spouse"]
    chain = [rng.choice(entities[k]) for k in kinds[: hops + 1]]
    used = set(chain)
    # `written`: the chain as the context states it (the answer possibly by its alias)
    written = chain[:hops] + [alias(chain[hops]) if uses_alias(chain) else chain[hops]]
    paragraphs = [fact_paragraph(chain[i], HOPS[i][0], written[i + 1]) + (True,) for i in range(hops)]
    # Non-supporting paragraphs state facts about other subjects (never contradict the chain).
    while len(paragraphs) < num_paragraphs:
        h = rng.randrange(len(HOPS))
        subj = rng.choice(entities[kinds[h]])
        if subj in used:
            continue
        used.add(subj)
        paragraphs.append(fact_paragraph(subj, HOPS[h][0], rng.choice(entities[kinds[h + 1]])) + (False,))
    rng.shuffle(paragraphs)
    paras = [{"idx": i, "title": t, "paragraph_text": txt, "is_supporting": sup} for i, (t, txt, sup) in enumerate(paragraphs)]
    support_idx = {p["title"]: p["idx"] for p in paras if p["is_supporting"]}
    decomposition = []
    for i in range(hops):
        subject = chain[0] if i == 0 else f"#{i}"
        decomposition.append({"id": 100 * uid + i, "question": f"{subject} >> {HOPS[i][1]}", "answer": chain[i + 1],
                              "paragraph_support_idx": support_idx[chain[i]]})
    shape = "2hop" if hops == 2 else f"{hops}hop1"
    return {
        "id": f"{shape}__{'_'.join(str(d['id']) for d in decomposition)}",
        "paragraphs": paras,
        "question": QUESTION_TEMPLATES[hops].format(p=chain[0]),
        "question_decomposition": decomposition,
        "answer": chain[hops],
        "answer_aliases": [alias(chain[hops])],
        "answerable": True,
        "cot": cot_answer(written, hops),  # extra field: the gold reasoning trace (used only to pre-train the tiny model)
    }


def generate_records(n: int, seed: int, hop_weights: dict[int, float], sizes: dict[str, int],
                     num_paragraphs: int = 20, id_offset: int = 0) -> list[dict]:
    """`n` records; deterministic in (seed, arguments)."""
    rng = random.Random(seed)
    entities = default_entities(sizes)
    hops_choices, weights = zip(*sorted(hop_weights.items()))
    return [make_record(rng, entities, rng.choices(hops_choices, weights)[0], id_offset + i, num_paragraphs)
            for i in range(n)]


def hop_weights(tiny_model_cfg: dict) -> dict[int, float]:
    """`tiny_model.hop_weights` as {hops: weight}: YAML and JSON give the keys as "2" or 2."""
    return {int(k): float(v) for k, v in tiny_model_cfg["hop_weights"].items()}


# The two splits draw from the run seed at fixed offsets, so train and dev never share a question draw;
# dev ids start at DEV_ID_OFFSET so they never collide with train ids.
TRAIN_SEED_OFFSET, DEV_SEED_OFFSET, DEV_ID_OFFSET = 11, 23, 10**6


def train_dev_records(tiny_model_cfg: dict, n_train: int, n_dev: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The toy world's training and held-out dev questions of run seed `seed` (rule toy_world, the GPU check)."""
    hop, sizes = hop_weights(tiny_model_cfg), tiny_model_cfg["entities"]
    train = generate_records(n_train, seed + TRAIN_SEED_OFFSET, hop, sizes)
    dev = generate_records(n_dev, seed + DEV_SEED_OFFSET, hop, sizes, id_offset=DEV_ID_OFFSET)
    return train, dev
