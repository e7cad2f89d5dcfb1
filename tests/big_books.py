"""Big books built at test time (never committed): one-line Russian texts of a given size."""

from __future__ import annotations

import random

SENTENCES = [
    "Кругом лежал глубокий снег, и сугробы доходили до самых окон.",
    "Над полем поднимался туман, серый и тяжёлый.",
    "Он долго думал о своей жизни и ничего не решил!",
    "— Пойдём домой, — сказала она.",
    "Зачем он приехал сюда?",
    "Старый дом стоял на краю деревни, и ветер свистел в его трубах…",
    "Т. е. всё было как всегда, в 5 ч. утра.",
]


def one_line_book(megabytes: float, seed: int = 7) -> str:
    """A one-line text of about `megabytes` MB (UTF-8) of Russian sentences, built here, never committed."""
    rnd = random.Random(seed)
    out, size = [], 0
    while size < megabytes * 2**20:
        s = rnd.choice(SENTENCES)
        out.append(s)
        size += len(s.encode()) + 1
    return " ".join(out)
