"""Every ``python`` code block in README.md and docs/**/*.md runs, against the fake server.

A block that cannot run offline (it needs an API key, a sound card, ...) is marked with an
HTML comment on the line before its fence, giving the reason; it is still compiled::

    <!-- docs-test: compile-only (needs GEMINI_API_KEY) -->

A block that builds on the blocks before it on the same page says so; it runs after them,
in their namespace::

    <!-- docs-test: continued -->

Blocks may use top-level ``await`` (as in ``python -m asyncio``); each runs in a fresh
namespace, in a temporary directory, with no API key in the environment.

A comment after a ``print(...)`` says what it prints, and is checked: the block's output
must have a line matching it (in the order of the prints), where ``...`` stands for any
text::

    print(session.status)          # closed
    print(monitor)                 # <LoopMonitor stopped stalls=1 max_lag=... ms ...>
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[ \t]*$")
MARKER = re.compile(r"^<!-- docs-test: compile-only \((?P<reason>[^)]+)\) -->$")
CONTINUED = "<!-- docs-test: continued -->"


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the first code line
    code: str
    compile_only: str | None  # the reason, when the block is not run

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def extract(path: Path) -> list[Snippet]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Snippet] = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i].strip()):
            indent = len(lines[i]) - len(lines[i].lstrip())
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            marker = MARKER.match(lines[j].strip()) if j >= 0 else None
            start = i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            body = "\n".join(line[indent:] for line in lines[start:i])
            if j >= 0 and lines[j].strip() == CONTINUED and out:
                body = out[-1].code + "\n" + body
            out.append(Snippet(path, start + 1, body, marker["reason"] if marker else None))
        i += 1
    return out


def printed_comments(code: str) -> list[tuple[int, str]]:
    """``(line, comment)`` for every ``print(...)  # comment`` statement of ``code``."""
    out: list[tuple[int, str]] = []
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.COMMENT:
            continue
        # The statement this comment closes: back to the start of its logical line.
        j = i - 1
        while j >= 0 and tokens[j].type not in (
            tokenize.NEWLINE,
            tokenize.NL,
            tokenize.INDENT,
            tokenize.DEDENT,
        ):
            j -= 1
        first = tokens[j + 1] if j + 1 < i else None
        if first is not None and first.type == tokenize.NAME and first.string == "print":
            out.append((tok.start[0], tok.string[1:].strip()))
    return out


def matches(pattern: str, line: str) -> bool:
    """``pattern`` with ``...`` standing for any text, against the whole ``line``."""
    regex = ".*".join(re.escape(part.strip()) for part in pattern.split("..."))
    return re.fullmatch(regex, line.strip()) is not None


def check_printed(snippet: Snippet, output: str) -> None:
    lines = output.splitlines()
    at = 0
    for lineno, comment in printed_comments(snippet.code):
        for k in range(at, len(lines)):
            if matches(comment, lines[k]):
                at = k + 1
                break
        else:
            raise AssertionError(
                f"{snippet.id}: the comment on line {lineno} of the block says it prints"
                f" {comment!r}; the output after the previous match was:\n" + "\n".join(lines[at:])
            )


def test_printed_comments_are_matched() -> None:
    code = 'print(1)  # 1\nx = 2  # not a print\nprint("a...b", x)  # a...b ...\n'
    assert printed_comments(code) == [(1, "1"), (3, "a...b ...")]
    snippet = Snippet(ROOT / "README.md", 1, code, None)
    check_printed(snippet, "1\na-anything-b 2\n")
    with pytest.raises(AssertionError, match=re.escape("says it prints 'a...b ...'")):
        check_printed(snippet, "1\nnot it\n")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


SNIPPETS = [s for path in doc_files() for s in extract(path)]


def test_the_extractor_finds_the_readme_blocks() -> None:
    readme = [s for s in SNIPPETS if s.path.name == "README.md"]
    assert len(readme) >= 3
    assert all(s.code.strip() for s in SNIPPETS)
    # Running is the rule: only a few blocks may be compile-only, each with its reason.
    runnable = [s for s in SNIPPETS if s.compile_only is None]
    assert len(runnable) >= len(SNIPPETS) // 2


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet(
    snippet: Snippet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = compile(
        snippet.code, snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    if snippet.compile_only is not None:
        return
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    result = eval(code, namespace)  # our own documentation, compiled above
    if inspect.iscoroutine(result):

        async def bounded() -> None:
            async with asyncio.timeout(30):
                await result

        asyncio.run(bounded())
    check_printed(snippet, capsys.readouterr().out)


def test_every_guide_page_is_in_the_site_navigation() -> None:
    """mkdocs.yml's nav and docs/guide/ agree (the site build itself runs in CI)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*(guide/\S+\.md)\s*$", nav, flags=re.MULTILINE))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs" / "guide").rglob("*.md")}
    assert listed == pages
    for module in ("session", "events", "errors", "audio", "tools", "metrics", "otel", "loopmon"):
        page = ROOT / "docs" / "guide" / "reference" / f"{module}.md"
        assert f"::: gemini_live.{module}" in page.read_text(encoding="utf-8")
