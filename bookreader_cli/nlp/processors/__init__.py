"""Processor registry: name → "module:Class", imported only when a processor is asked for; and the
processors loaded in this process (a worker keeps its models for every chapter it is given).

Every class takes a config.NlpSettings (None: the defaults) and follows nlp.base.Processor:
availability() is cheap, load() once per process, score() one Vote per sentence.
"""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from bookreader_cli.config import NlpSettings

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


def create(name: str, nlp: NlpSettings | None = None):
    return processor_class(name)(nlp)


def check(name: str, nlp: NlpSettings | None = None) -> tuple[bool, str, object | None]:
    """(available, reason or model source, instance or None) without loading any model."""
    try:
        processor = create(name, nlp)
    except KeyError as exc:
        return False, str(exc.args[0]), None
    except Exception as exc:  # a module that fails to import makes its processor unavailable
        return False, f"cannot import: {type(exc).__name__}: {exc}", None
    try:
        ok, reason = processor.availability()
    except Exception as exc:
        return False, f"availability check failed: {type(exc).__name__}: {exc}", None
    return bool(ok), str(reason), processor if ok else None


LOADED: dict[str, Any] = {}  # processors loaded in this process, by name


def loaded_processor(name: str, nlp: NlpSettings | None = None, lang: str = "ru"):
    """(processor, load seconds) — created and loaded once per process."""
    processor = LOADED.get(name)
    if processor is None:
        processor = create(name, nlp)
        LOADED[name] = processor
    takes_lang = len(inspect.signature(processor.load).parameters) > 0
    seconds = processor.load(lang) if takes_lang else processor.load()
    return processor, float(seconds or 0.0)
