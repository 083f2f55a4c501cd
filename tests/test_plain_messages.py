"""User-facing messages are plain sentences: no internal document names, and the
refusal of a TEXT reply from a speaking model names the fix."""

from __future__ import annotations

import logging
import re

import pytest

from gemini_live import types
from gemini_live.errors import ConfigError
from gemini_live.models import adapt_setup

#: What a user never has: the internal source documents and their section signs.
INTERNAL = re.compile(r"live-protocol\.md|peers-20\d\d|§|\(source:")


def _setup(model: str, **gen: object) -> types.Setup:
    return types.Setup(model=model, generation_config=types.GenerationConfig(**gen))  # type: ignore[arg-type]


def test_text_refusal_names_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        adapt_setup(_setup("models/gemini-3.8-live", response_modalities=["TEXT"]), vertex=False)
    text = str(info.value)
    assert "output_audio_transcription=True" in text
    assert not INTERNAL.search(text), text


def test_refusals_and_warnings_cite_no_documents(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError) as info:
        adapt_setup(
            _setup(
                "models/gemini-2.5-flash-native-audio-preview-09-2025",
                thinking_config=types.ThinkingConfig(thinking_level="LOW"),
            ),
            vertex=False,
        )
    assert not INTERNAL.search(str(info.value)), str(info.value)
    with pytest.raises(ConfigError) as info:
        adapt_setup(
            _setup(
                "models/gemini-3.8-live-translate",
                translation_config=types.TranslationConfig(target_language_code="fr"),
            ),
            vertex=True,
        )
    assert not INTERNAL.search(str(info.value)), str(info.value)
    with caplog.at_level(logging.WARNING, logger="gemini_live"):
        adapt_setup(_setup("models/gemini-3.8-live-extended-thinking"), vertex=False)
    assert caplog.records, "the missing thinkingLevel is fixed with a warning"
    for record in caplog.records:
        assert not INTERNAL.search(record.getMessage()), record.getMessage()
