"""TXT titles: a dedication, an epigraph or a chapter heading on the first line is not the book's title."""

from __future__ import annotations

import pytest
from conftest import CORPUS

from bookreader_cli.books.txt import guess_title, parse_txt

BODY = "\n\n".join(["Глава I", "Было тихо. " * 60, "Глава II", "Снова тихо. " * 60])


def title_of(first_lines: str, name: str = "dostoevsky_bratya_karamazovy.txt") -> tuple[str, str]:
    book = parse_txt(f"{first_lines}\n\n{BODY}".encode(), name, name)
    return book.title, book.title_source


@pytest.mark.parametrize(
    "first_lines",
    [
        (
            "     Посвящается Анне Григорьевне Достоевской\n  Истинно, истинно говорю вам: если пшеничное зерно, падши "
            "в землю, не умрет, то останется одно; а если умрет, то принесет много плода.\n (Евангелие от Иоанна)"
        ),
        "Посвящение\nМоей жене",
        "Предисловие к русскому изданию",
        "— Ну что ж, — сказал он, — пойдём.",
        "To my wife, without whom this book",
    ],
)
def test_front_matter_is_not_the_title(first_lines):
    assert title_of(first_lines) == ("dostoevsky bratya karamazovy", "file name")


def test_a_chapter_heading_first_is_not_the_title():
    book = parse_txt(BODY.encode("utf-8"), "tolstoy_detstvo.txt", "tolstoy_detstvo.txt")
    assert (book.title, book.title_source) == ("tolstoy detstvo", "file name")


@pytest.mark.parametrize(
    "first_lines,title",
    [
        ("Антон Чехов\nДУЭЛЬ", "ДУЭЛЬ"),
        ("МАКСИМ ГОРЬКИЙ\nДетство", "Детство"),
        ("Михаил Лермонтов. Герой нашего времени", "Герой нашего времени"),
        ("Александр Сергеевич Пушкин. Дубровский", "Дубровский"),
        ("Л. Н. Толстой\nМЕТЕЛЬ.\nРАССКАЗ.", "МЕТЕЛЬ"),
        ("TREASURE ISLAND\nby Robert Louis Stevenson", "TREASURE ISLAND"),
        ("GREAT EXPECTATIONS\n[1867 Edition]", "GREAT EXPECTATIONS"),
    ],
)
def test_title_lines_are_still_read(first_lines, title):
    assert title_of(first_lines) == (title, "first lines")


def test_gutenberg_header_wins():
    text = "The Project Gutenberg eBook\n\nTitle: Dracula\n\nAuthor: Bram Stoker\n"
    assert guess_title(text, "pg345.txt") == ("Dracula", "gutenberg header")


def test_karamazovy_from_the_corpus():
    path = CORPUS / "ru_txt__d0rj_RusLit" / "dostoevsky_bratya_karamazovy.txt"
    if not path.is_file():
        pytest.skip("../shared/corpus is absent")
    book = parse_txt(path.read_bytes(), str(path), path.name)
    assert "Посвящается" not in book.title
    assert (book.title, book.title_source) == ("dostoevsky bratya karamazovy", "file name")
