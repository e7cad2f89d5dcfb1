"""A faster exact tree decoder for Stanza's dependency parser (numpy only; no torch or stanza import).

Stanza decodes each sentence's arc scores with Chu-Liu-Edmonds, finding cycles with a recursive Python
Tarjan over the whole graph after every contraction. Our small parser's first-choice heads form many
cycles (~25 contractions per sentence), so that decoder took ~40% of all Stanza time. This is the same
algorithm on the same scores — same root re-weighting, same contraction and expansion — with an O(n)
cycle walk and no per-step padding (5x faster on Karamazov's parse scores). The maximum spanning tree
it returns is Stanza's (they could differ only on exactly tied scores). `install()` points Stanza's
parser at it.
"""

from __future__ import annotations

import numpy as np


def _find_cycle(heads: list[int]) -> list[int] | None:
    """Nodes of one cycle in a head graph (heads[0] == 0 is the root), or None when it is a tree."""
    state = [0] * len(heads)  # 0 unseen, 1 on the current walk, 2 done
    state[0] = 2
    for start in range(1, len(heads)):
        if state[start]:
            continue
        walk = []
        node = start
        while state[node] == 0:
            state[node] = 1
            walk.append(node)
            node = heads[node]
        if state[node] == 1:  # came back onto this walk: a cycle from `node` on
            return walk[walk.index(node) :]
        for visited in walk:
            state[visited] = 2
    return None


def _prepare(scores: np.ndarray) -> None:
    np.fill_diagonal(scores, -np.inf)  # no self-loops
    scores[0] = -np.inf
    scores[0, 0] = 0.0


def chuliu_edmonds(scores: np.ndarray) -> np.ndarray:
    """Maximum spanning arborescence of scores[dependent, head] (modifies `scores`); heads per node.

    One cycle of the greedy graph contracted per round (contracting all of them at once measured
    slower: with the root arcs pushed down, cycles merge one into the next until a single one is left).
    """
    stack = []
    while True:
        _prepare(scores)
        tree = scores.argmax(axis=1)
        cycle = _find_cycle(tree.tolist())
        if cycle is None:
            break
        n = len(tree)
        in_cycle = np.zeros(n, dtype=bool)
        in_cycle[cycle] = True
        cycle_locs = np.flatnonzero(in_cycle)
        noncycle_locs = np.flatnonzero(~in_cycle)
        cycle_scores = scores[cycle_locs, tree[cycle_locs]]
        # the cycle as a dependent of each outside head: its best node to re-attach
        head_scores = scores[np.ix_(cycle_locs, noncycle_locs)] - cycle_scores[:, None] + cycle_scores.sum()
        metanode_heads = head_scores.argmax(axis=0)
        # the cycle as a head of each outside dependent: its best node to hang from
        dep_scores = scores[np.ix_(noncycle_locs, cycle_locs)]
        metanode_deps = dep_scores.argmax(axis=1)
        m = len(noncycle_locs)
        sub = np.zeros((m + 1, m + 1))
        sub[:m, :m] = scores[np.ix_(noncycle_locs, noncycle_locs)]
        columns = np.arange(m)
        sub[m, :m] = head_scores[metanode_heads, columns]
        sub[:m, m] = dep_scores[columns, metanode_deps]
        stack.append((tree, cycle_locs, noncycle_locs, metanode_heads, metanode_deps))
        scores = sub
    while stack:
        contracted = tree
        tree, cycle_locs, noncycle_locs, metanode_heads, metanode_deps = stack.pop()
        m = len(noncycle_locs)
        cycle_head = contracted[m]
        outside = contracted[:m]
        expanded = np.empty_like(tree)
        plain = outside < m
        expanded[noncycle_locs[plain]] = noncycle_locs[outside[plain]]
        expanded[noncycle_locs[~plain]] = cycle_locs[metanode_deps[~plain]]
        expanded[cycle_locs] = tree[cycle_locs]
        expanded[cycle_locs[metanode_heads[cycle_head]]] = noncycle_locs[cycle_head]
        tree = expanded
    return tree


def chuliu_edmonds_one_root(scores: np.ndarray) -> np.ndarray:
    """Stanza's single-root decoding: root arcs pushed below every other arc, then the spanning tree."""
    scores = scores.astype(np.float64)  # a copy: the caller's array stays as it was
    min_score = scores[np.isfinite(scores)].min()
    scores[:, 0] += min_score * scores.shape[0]
    return chuliu_edmonds(scores)


def install() -> bool:
    """Make Stanza's graph parser decode with this module; False when its internals have moved."""
    try:
        from stanza.models.depparse import model as parser_module
    except ImportError:
        return False
    if not hasattr(parser_module, "chuliu_edmonds_one_root"):
        return False
    parser_module.chuliu_edmonds_one_root = chuliu_edmonds_one_root
    return True
