"""The API reference renders docstrings as Markdown with cross-links.

The docstrings use Sphinx roles (``:class:`~gemini_live.Session```) and reST ``::``
literal blocks; docs/_ext/griffe_roles.py rewrites them at build time. These tests check
the converter on its own and then build the whole site (``mkdocs build --strict``) and
scan the API reference pages: no literal role, no stray ``::``, and links that resolve.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "docs" / "_ext" / "griffe_roles.py"
REFERENCE_PAGES = sorted((ROOT / "docs" / "guide" / "reference").glob("*.md"))

HAVE_MKDOCS = importlib.util.find_spec("mkdocs") is not None and (
    importlib.util.find_spec("mkdocstrings_handlers") is not None
)
needs_mkdocs = pytest.mark.skipif(
    not HAVE_MKDOCS and not os.environ.get("CI"),  # in CI a missing docs extra fails
    reason="the docs extra (mkdocs, mkdocs-material, mkdocstrings[python]) is not installed",
)

LITERAL_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|exc|data|obj|const):`")
# A word ending in "::" in running text (reST's literal-block marker left over).
STRAY_LITERAL = re.compile(r"\S::(?:\s|$)|(?:^|\s)::(?:\s|$)")


def _load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("griffe_roles", EXTENSION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _visible_text(page: str) -> str:
    """The page's running text: code, preformatted blocks, scripts and tags removed."""
    body = re.sub(r"<(pre|code|script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.fixture(scope="module")
def griffe_package() -> Any:
    if not HAVE_MKDOCS:
        if os.environ.get("CI"):
            pytest.fail("the docs extra is not installed in CI")
        pytest.skip("the docs extra (griffe) is not installed")
    import griffe

    ext = _load_extension()
    return griffe.load(
        "gemini_live",
        search_paths=[str(ROOT / "src")],
        extensions=griffe.load_extensions(ext.SphinxRolesToAutorefs),
    )


@needs_mkdocs
def test_roles_become_autorefs_or_code(griffe_package: Any) -> None:
    session = griffe_package["session"]
    text = session.docstring.value
    assert not LITERAL_ROLE.search(text)
    # ":class:`~gemini_live.protocol.ClientProtocol`": short title, canonical target.
    assert (
        '<autoref identifier="gemini_live.protocol._client.ClientProtocol" optional>'
        "<code>ClientProtocol</code></autoref>"
    ) in text
    # A private module nobody documents stays a plain code span.
    assert "<code>gemini_live._connector</code>" in text


@needs_mkdocs
def test_relative_names_resolve_against_the_class(griffe_package: Any) -> None:
    ext = _load_extension()
    session_cls = griffe_package["session.Session"]
    out = ext.convert_roles(
        ":meth:`send_text` and :meth:`~Session.close` and :attr:`nope`", session_cls
    )
    send_text = '<autoref identifier="gemini_live.session.Session.send_text" optional>'
    assert send_text + "<code>send_text()</code>" in out
    assert (
        '<autoref identifier="gemini_live.session.Session.close" optional><code>close()</code>'
        in out
    )
    assert out.endswith("<code>nope</code>")
    # A title in Sphinx's "title <target>" form, and a name outside the package.
    out = ext.convert_roles(
        ":class:`the event <gemini_live.events.ModelAudio>` :class:`asyncio.Queue`", session_cls
    )
    assert (
        '<autoref identifier="gemini_live.events.ModelAudio" optional><code>the event</code>' in out
    )
    assert out.endswith("<code>asyncio.Queue</code>")


@needs_mkdocs
def test_literal_blocks_become_fences(griffe_package: Any) -> None:
    ext = _load_extension()
    mod = griffe_package["session"]
    text = (
        "Intro::\n\n    x = 1\n    if x:\n        y = 2\n\n"
        'After :class:`Session`.\n\n::\n\n    {"a": 1}\n'
    )
    out = ext.convert_docstring(text, mod)
    assert out.splitlines()[:7] == ["Intro:", "", "```python", "x = 1", "if x:", "    y = 2", "```"]
    assert "```json" in out and '{"a": 1}' in out
    assert "::" not in out
    assert "gemini_live.session.Session" in out
    # Indented (inside a Google-style section) the fence keeps the section's indentation.
    out = ext.convert_docstring("Example:\n    Run it::\n\n        go()\n", mod)
    assert out.splitlines() == [
        "Example:",
        "    Run it:",
        "",
        "    ```python",
        "    go()",
        "    ```",
    ]
    # Roles inside a literal block are code, not links.
    out = ext.convert_docstring("Code::\n\n    :class:`X`\n", mod)
    assert ":class:`X`" in out


@needs_mkdocs
@pytest.mark.timeout(600)
def test_site_builds_strict_with_cross_links(tmp_path: Path) -> None:
    if not HAVE_MKDOCS:
        pytest.fail("the docs extra is not installed in CI")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    pages = {p.stem: site / "guide" / "reference" / p.stem / "index.html" for p in REFERENCE_PAGES}
    assert len(pages) >= 20
    problems: list[str] = []
    for name, path in pages.items():
        page = path.read_text(encoding="utf-8")
        text = _visible_text(page)
        problems.extend(
            f"{name}: literal role {page[m.start() : m.start() + 60]!r}"
            for m in LITERAL_ROLE.finditer(page)
        )
        problems.extend(
            f"{name}: stray '::' in {text[max(0, m.start() - 40) : m.end() + 10]!r}"
            for m in STRAY_LITERAL.finditer(text)
        )
        if "<autoref" in page:
            problems.append(f"{name}: an <autoref> tag was left unprocessed")
    assert not problems, "\n".join(problems)

    session = pages["session"].read_text(encoding="utf-8")
    assert 'href="../errors/#gemini_live.errors.ConfigError"' in session
    assert 'href="../tools/#gemini_live.tools.ToolRunner"' in session
    metrics = pages["metrics"].read_text(encoding="utf-8")
    assert 'href="../events/#gemini_live.events.ModelAudio"' in metrics
    # Across the reference, most roles are links (a role naming something undocumented,
    # such as a private module, is a plain code span instead).
    links = sum(
        len(re.findall(r'<a class="autorefs autorefs-internal"', p.read_text(encoding="utf-8")))
        for p in pages.values()
    )
    assert links >= 200
