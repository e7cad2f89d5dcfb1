"""The import layers (docs/architecture.md): a module never imports one from a higher layer, and no two
modules import each other, directly or round a loop. Function-level imports count as much as top-level ones.

The check is an `ast` walk over the package's source, so it sees every import statement, whether or not it
runs; a test proves it fails when someone adds an upward or a circular import (on a copy of the package).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bookreader_cli"

# Lowest first. A module may import from its own layer or below; the first matching prefix decides.
LAYERS: list[tuple[str, ...]] = [
    ("bookreader_cli.errors",),
    ("bookreader_cli.config", "bookreader_cli.output"),
    (
        "bookreader_cli.books",
        "bookreader_cli.epubcfi",
        "bookreader_cli.nlp",
        "bookreader_cli.training",
        "bookreader_cli.images",
        "bookreader_cli.export",
        "bookreader_cli.cache",
        "bookreader_cli.store",
    ),
    (
        "bookreader_cli.locks",
        "bookreader_cli.runs",
        "bookreader_cli.ops",
        "bookreader_cli.epub_source",
        "bookreader_cli.broker",
    ),
    ("bookreader_cli.jobs",),
    ("bookreader_cli.workers.app", "bookreader_cli.workers.remote"),
    ("bookreader_cli.runners",),
    ("bookreader_cli.cli", "bookreader_cli.workers", "bookreader_cli.celery_app", "bookreader_cli.__main__"),
]
ROOT = "bookreader_cli"  # the package itself: __version__ and the lazily loaded library surface


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a module: the longest matching prefix wins (workers.app before workers)."""
    best, best_len = None, -1
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = number, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")
    return best


def imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The package modules `path` imports anywhere in it (resolved to the longest known module name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != module:
                found.add(target)
    return found


def graph(package: Path) -> dict[str, set[str]]:
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    known = set(files)
    return {name: imports(path, name, known) for name, path in files.items()}


def upward(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for source, targets in sorted(edges.items()):
        if source == ROOT:
            continue
        for target in sorted(targets):
            if target != ROOT and layer(target) > layer(source):
                out.append(f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})")
    return out


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import loops between modules (a package importing its own submodules is not a loop: Python
    runs the package's __init__ first whichever submodule is imported)."""
    edges = {s: {t for t in ts if not _is_ancestor(t, s)} for s, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    for module in graph(PACKAGE):
        if module != ROOT:
            layer(module)


def test_no_upward_imports():
    assert upward(graph(PACKAGE)) == []


def test_no_import_cycles():
    assert cycles(graph(PACKAGE)) == []


def test_jobs_never_import_cli_or_workers():
    edges = graph(PACKAGE)
    bad = [
        (s, t)
        for s, ts in edges.items()
        if s.startswith("bookreader_cli.jobs")
        for t in ts
        if t.startswith(("bookreader_cli.cli", "bookreader_cli.workers", "bookreader_cli.runners"))
    ]
    assert bad == []


def test_the_nlp_engine_never_imports_its_runner():
    assert "bookreader_cli.nlp.runner" not in graph(PACKAGE)["bookreader_cli.nlp.engine"]


def test_the_check_fails_on_an_added_upward_import(tmp_path):
    copy = tmp_path / "bookreader_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "stanza_bundled", "lexicons"))
    store = copy / "store" / "__init__.py"
    store.write_text(
        store.read_text(encoding="utf-8") + "\n\ndef _sneaky():\n    from bookreader_cli.jobs import process_book\n",
        encoding="utf-8",
    )
    assert upward(graph(copy)) == ["bookreader_cli.store (layer 2) imports bookreader_cli.jobs (layer 4)"]


def test_the_check_fails_on_an_added_circular_import(tmp_path):
    copy = tmp_path / "bookreader_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "stanza_bundled", "lexicons"))
    engine = copy / "nlp" / "engine.py"
    engine.write_text(
        engine.read_text(encoding="utf-8") + "\n\ndef _pool():\n    from bookreader_cli.nlp import runner\n",
        encoding="utf-8",
    )
    assert upward(graph(copy)) == []  # same layer: only the loop gives it away
    assert ["bookreader_cli.nlp.engine", "bookreader_cli.nlp.runner"] in cycles(graph(copy))
