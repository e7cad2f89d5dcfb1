"""Processor registry: name → "module:Class", imported only when a processor is asked for.

Every class takes `settings` (a config.Settings, its .nlp part, a dict, or None) and follows
nlp.base.Processor: availability() is cheap, load() once per process, score() one Vote per sentence.
"""

from __future__ import annotations

import importlib
import os

REGISTRY: dict[str, str] = {
    "spacy": "bookreader_cli.nlp.processors.spacy:SpacyProcessor",
    "natasha": "bookreader_cli.nlp.processors.natasha:NatashaProcessor",
    "stanza": "bookreader_cli.nlp.processors.stanza:StanzaProcessor",
}

# Extra processors from the environment: BOOKREADER_EXTRA_PROCESSORS="name=module:Class,…" (a plug-in
# hook; the environment reaches spawned worker processes too, which a changed dict would not).
EXTRA_ENV = "BOOKREADER_EXTRA_PROCESSORS"


def _registry() -> dict[str, str]:
    extra = {}
    for item in os.environ.get(EXTRA_ENV, "").split(","):
        name, _, target = item.partition("=")
        if name.strip() and ":" in target:
            extra[name.strip()] = target.strip()
    return {**REGISTRY, **extra}


# Cheapest first: the order adaptive mode and listings use.
DEFAULT_ORDER = ("spacy", "natasha", "stanza")


def names() -> list[str]:
    return list(_registry())


def processor_class(name: str):
    """The class registered under `name`; ImportError if its module cannot be imported."""
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown processor {name!r} (known: {', '.join(registry)})")
    module_name, _, class_name = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create(name: str, settings=None):
    return processor_class(name)(settings)


def check(name: str, settings=None) -> tuple[bool, str, object | None]:
    """(available, reason or model source, instance or None) without loading any model."""
    try:
        processor = create(name, settings)
    except KeyError as exc:
        return False, str(exc.args[0]), None
    except Exception as exc:  # a module that fails to import makes its processor unavailable
        return False, f"cannot import: {type(exc).__name__}: {exc}", None
    try:
        ok, reason = processor.availability()
    except Exception as exc:
        return False, f"availability check failed: {type(exc).__name__}: {exc}", None
    return bool(ok), str(reason), processor if ok else None
