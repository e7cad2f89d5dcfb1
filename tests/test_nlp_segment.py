"""The shared splitter: offsets into the text, paragraphs respected, kinds for headings and dialogue."""

from bookreader_cli.books.model import Chapter
from bookreader_cli.nlp.segment import segment

TEXT = (
    "Глава первая\n"
    "Вечер был тихий. На столе стоял медный самовар, начищенный до блеска.\n"
    "— Где ты была? — спросил он.\n"
    "Т. е. ничего не случилось, и т. д. Всё было покрыто снегом."
)


def test_offsets_point_into_the_text():
    sentences = segment(TEXT)
    assert sentences, "no sentences"
    for s in sentences:
        assert TEXT[s.start : s.end] == s.text
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
    chapter = Chapter.from_paragraphs(
        "I", [("Эпиграф к главе.", "epigraph"), ("Река была широкая. Лес стоял стеной.", "text")]
    )
    sentences = segment(chapter.text, chapter.paragraphs)
    assert [s.kind for s in sentences] == ["epigraph", "text", "text"]
    for s in sentences:
        assert chapter.text[s.start : s.end] == s.text


# Speech is judged per sentence (issue 11): a narrative sentence beside a quoted remark is narration.
PORTRAIT = (
    "«Пойдём же скорее домой», — сказал он. Это был высокий худой старик в потёртом синем сюртуке, "
    "с клочковатой седой бородой."
)


def test_a_narrative_sentence_beside_a_quoted_remark_is_not_dialogue():
    remark, portrait = segment(PORTRAIT)
    assert remark.kind == "dialogue" and remark.speech > 0.5
    assert portrait.kind == "text" and portrait.speech == 0.0


def test_dialogue_lines_and_their_narrated_parts():
    text = (
        "— Где ты была? — спросил он.\n"
        "— Иди сюда, — сказал высокий старик в синем сюртуке, с седой бородой.\n"
        "— Хорошо. — Она встала. Потом долго стояла у окна, глядя на тёмную улицу и жёлтые огни фонарей."
    )
    sentences = segment(text)
    by_text = {s.text: s for s in sentences}
    assert by_text["— Где ты была? — спросил он."].kind == "dialogue"
    # the narrated part describes a look: the models judge it (speech share is a feature)
    look = next(s for s in sentences if s.paragraph == 1)
    assert look.kind == "text" and 0 < look.speech < 0.5
    # after the remark, the author's words are narration
    window = next(s for s in sentences if s.text.startswith("Потом"))
    assert window.kind == "text" and window.speech == 0.0


def test_a_story_told_at_length_counts_as_narration():
    story = "— " + " ".join(["Было это давно, в степи, где стояла наша изба у самой реки."] * 16)
    sentences = segment(story)
    assert all(s.kind == "text" for s in sentences) and all(s.speech > 0.9 for s in sentences)
    assert sentences[0].speech_para > 600


def test_a_short_quoted_name_is_not_speech():
    (s,) = segment("Он читал «Северную пчелу» у окна, в старом кресле с высокой спинкой.")
    assert s.speech == 0.0 and s.kind == "text"
