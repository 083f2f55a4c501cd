"""--thinking and the per-model rules the CLI applies before connecting."""

from __future__ import annotations

import argparse
import logging

import pytest

import gemini_live as gl
from gemini_live import types as T
from gemini_live.cli import build_parser
from gemini_live.cli._runtime import UsageError, model_aware, thinking_config

from .conftest import CliRunner


def _config(model: str) -> gl.SessionConfig:
    return gl.build_config(model=model, url="ws://127.0.0.1:9", tools=None)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "chat"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("low", T.ThinkingConfig(thinking_level="LOW")),
        ("HIGH", T.ThinkingConfig(thinking_level="HIGH")),
        ("0", T.ThinkingConfig(thinking_budget=0)),
        ("-1", T.ThinkingConfig(thinking_budget=-1)),
    ],
)
def test_thinking_values(value: str, expected: T.ThinkingConfig) -> None:
    assert thinking_config(value) == expected


def test_bad_thinking_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--thinking"):
        thinking_config("lots")


def test_extended_thinking_gets_its_required_level_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gemini_live")
    config = model_aware(_config("models/gemini-3.8-live-extended-thinking"), _args(), vertex=False)
    gen = config.setup.generation_config
    assert isinstance(gen, T.GenerationConfig)
    assert gen.thinking_config == T.ThinkingConfig(thinking_level="LOW")


def test_thinking_flag_reaches_the_setup() -> None:
    config = model_aware(
        _config("models/gemini-3.8-live-extended-thinking"),
        _args("--thinking", "high"),
        vertex=False,
    )
    gen = config.setup.generation_config
    assert isinstance(gen, T.GenerationConfig)
    assert gen.thinking_config == T.ThinkingConfig(thinking_level="HIGH")
    budget = model_aware(
        _config("models/gemini-2.5-flash-native-audio-latest"),
        _args("--thinking", "512"),
        vertex=False,
    )
    gen = budget.setup.generation_config
    assert isinstance(gen, T.GenerationConfig)
    assert gen.thinking_config == T.ThinkingConfig(thinking_budget=512)


def test_unchanged_config_is_returned_as_is() -> None:
    config = _config("models/gemini-3.8-live")
    assert model_aware(config, _args(), vertex=False) is config


def test_a_level_on_2_5_exits_2_naming_model_and_field(run_cli: CliRunner) -> None:
    r = run_cli(
        "--fake",
        "--model",
        "gemini-2.5-flash-native-audio-latest",
        "--thinking",
        "low",
        "chat",
        "--plain",
        input="hi\n",
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    assert "gemini-2.5-flash-native-audio-latest" in r.stderr
    assert "thinkingLevel" in r.stderr
