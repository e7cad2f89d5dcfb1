"""Non-English descriptions ask the image API to enhance (rewrite into English) the prompt; English ones do not."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from bookreader_cli.config import load_settings
from bookreader_cli.images.generate import plan_requests
from bookreader_cli.images.prompts import is_english

RU = "Старая мельница стояла над рекой, колесо обросло мхом."
EN = "The old mill stood above the river, its wheel overgrown with moss."


def enhance_param(text: str, tmp_path, **env) -> str:
    settings = load_settings(tmp_path, environ={f"BOOKREADER_IMAGES_{k.upper()}": v for k, v in env.items()})
    (plan,) = plan_requests([{"id": 1, "text": text, "type": "location"}], settings.images)
    return parse_qs(urlsplit(plan["image_url"]).query)["enhance"][0]


def test_russian_words_are_enhanced_by_default(tmp_path):
    assert enhance_param(RU, tmp_path) == "true"
    assert enhance_param(EN, tmp_path) == "false"


def test_the_setting_turns_it_off_or_on_for_all(tmp_path):
    assert enhance_param(RU, tmp_path, enhance_non_english="false") == "false"
    assert enhance_param(EN, tmp_path, enhance="true") == "true"


@pytest.mark.parametrize(
    "text,english",
    [(EN, True), (RU, False), ("Café au lait, déjà vu.", True), ("— 1812!", True), ("Он сказал: OK, fine.", False)],
)
def test_is_english(text, english):
    assert is_english(text) is english
