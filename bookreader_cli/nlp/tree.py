"""Repairing dependency parses that are not trees (slovnet can return cycles or several roots)."""

from __future__ import annotations


def repair_tree(heads: list[int]) -> list[int]:
    """Heads as 0-based indices (-1 = root) → a valid tree: exactly one root, no cycles, heads in range.

    The first root (or, with none, the first token) stays root; any other root, out-of-range or
    self-pointing head, and the entry point of every cycle is re-attached to that root.
    """
    n = len(heads)
    if n == 0:
        return []
    fixed = [h if (isinstance(h, int) and -1 <= h < n and h != i) else -2 for i, h in enumerate(heads)]
    roots = [i for i, h in enumerate(fixed) if h == -1]
    root = roots[0] if roots else 0
    fixed[root] = -1
    for i, h in enumerate(fixed):
        if i != root and h in (-1, -2):
            fixed[i] = root
    # break cycles: walk up from each token; a walk that revisits a node without reaching root is a cycle
    state = [0] * n  # 0 unvisited, 1 on current path, 2 done (reaches root)
    state[root] = 2
    for start in range(n):
        path = []
        node = start
        while state[node] == 0:
            state[node] = 1
            path.append(node)
            node = fixed[node]
        if state[node] == 1:  # came back to a node of this path: cut the cycle there
            fixed[node] = root
        for p in path:
            state[p] = 2
    return fixed


def is_tree(heads: list[int]) -> bool:
    if sum(1 for h in heads if h == -1) != 1:
        return False
    for start in range(len(heads)):
        seen = set()
        node = start
        while heads[node] != -1:
            if node in seen or not 0 <= heads[node] < len(heads):
                return False
            seen.add(node)
            node = heads[node]
    return True
