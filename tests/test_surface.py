"""The library surface (`bookreader_cli.__all__`): what a script may import from the package itself.

Guarded as httpx guards its own: the exact list, each name importable from the package and the very object
its module defines; and importing the package alone stays cheap (everything loads on first use).
"""

from __future__ import annotations

import json
import subprocess
import sys

import bookreader_cli

SURFACE = [
    "__version__",
    "load_book",
    "Book",
    "Chapter",
    "Paragraph",
    "Settings",
    "NlpSettings",
    "load_settings",
    "Context",
    "import_book",
    "import_books",
    "list_books",
    "show_book",
    "remove_book",
    "process_book",
    "nlp_text",
    "list_descriptions",
    "generate_cfi_locations",
    "resolve_cfi",
    "cfi_from_percentage",
    "cfi_to_percentage",
    "cache_epub_file",
    "get_cached_epub",
    "generate_images",
    "batch_generate_for_book",
    "cleanup_old_images",
    "system_stats",
    "health_check",
    "analyze_text",
    "BookreaderError",
    "BadInput",
    "NotFound",
    "UnreadableBook",
    "NotAnEpub",
    "JobFailed",
    "Busy",
]


def test_all_is_exactly_the_surface():
    assert sorted(bookreader_cli.__all__) == sorted(SURFACE)
    assert len(set(bookreader_cli.__all__)) == len(bookreader_cli.__all__)


def test_every_public_name_is_the_object_its_module_defines():
    import importlib

    for name in bookreader_cli.__all__:
        value = getattr(bookreader_cli, name)
        if name == "__version__":
            continue
        module = importlib.import_module(bookreader_cli._SURFACE[name])
        assert value is getattr(module, name), name
        assert name in dir(bookreader_cli)


def test_errors_tell_the_kinds_of_bad_input_apart():
    assert issubclass(bookreader_cli.NotFound, bookreader_cli.BadInput)
    assert issubclass(bookreader_cli.UnreadableBook, bookreader_cli.BadInput)
    assert issubclass(bookreader_cli.NotAnEpub, bookreader_cli.BadInput)
    assert issubclass(bookreader_cli.Busy, bookreader_cli.JobFailed)
    assert not issubclass(bookreader_cli.JobFailed, bookreader_cli.BadInput)


def test_an_unknown_name_is_an_attribute_error():
    try:
        bookreader_cli.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_package_loads_nothing_else():
    code = (
        "import sys, json, bookreader_cli\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bookreader_cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["bookreader_cli"]


def test_a_script_can_import_and_list_a_book(tmp_path):
    from pathlib import Path

    from bookreader_cli import Context, import_book, list_books, load_settings

    sample = Path(__file__).resolve().parents[1] / "sample_books" / "ru_sample.txt"
    with Context(load_settings(tmp_path / "home", environ={})) as ctx:
        book = import_book(ctx, sample)
        assert [b["id"] for b in list_books(ctx)["books"]] == [book["book_id"]]
