"""Build-time conversion of reST markup in docstrings for the API reference.

The docstrings in ``src/`` use Sphinx roles (``:class:`~gemini_live.Session```,
``:meth:`send_text```) and reST literal blocks (a paragraph ending in ``::`` followed by
an indented block). mkdocstrings renders Markdown, so without help those show up
verbatim. This griffe extension rewrites every docstring of the loaded package once it
is fully loaded, before mkdocstrings parses it:

* a role whose target resolves to an object of the package becomes an optional autoref
  (``<autoref identifier="gemini_live.events.ModelAudio" optional>``), which
  mkdocs-autorefs turns into a link when the object is rendered somewhere in the site
  and into a plain code span when it is not (so strict builds never fail on them);
* a role whose target does not resolve (``asyncio.Queue``, a parameter name) becomes a
  plain code span;
* a reST literal block becomes a fenced code block (``python`` when the text parses as
  Python, ``json`` when it is JSON, ``text`` otherwise); ``Tree::`` becomes ``Tree:``
  and a lone ``::`` disappears, as in Sphinx.

The docstrings themselves stay untouched in the sources. Registered in mkdocs.yml under
the python handler's ``extensions:`` option.
"""

from __future__ import annotations

import ast
import html
import json
import re
import textwrap
from typing import Any

from griffe import Alias, Extension, Module, Object

ROLES = ("class", "meth", "func", "attr", "mod", "exc", "data", "obj", "const")
CALLABLE_ROLES = frozenset({"meth", "func"})

# :role:`target`, :py:role:`target`, :role:`title <target>` (Sphinx syntax).
ROLE_RE = re.compile(
    r":(?:py:)?(?P<role>" + "|".join(ROLES) + r"):`(?P<body>[^`\n]+)`",
)
TITLED_RE = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")


def _lookup(obj: Object | Alias, dotted: str) -> Object | Alias | None:
    """Walk ``dotted`` through the members of ``obj`` (aliases followed)."""
    current: Object | Alias = obj
    for part in dotted.split("."):
        try:
            members = current.members
        except Exception:  # an alias that cannot resolve (external import)
            return None
        if part not in members:
            return None
        current = members[part]
    return current


def _resolve(scope: Object, target: str) -> str | None:
    """The path of the package object ``target`` names, seen from ``scope``; None if none."""
    target = target.strip().removesuffix("()").lstrip(".")
    if not target:
        return None
    collection = scope.modules_collection
    candidates: list[Object | Alias] = []
    # A fully qualified name.
    top = target.split(".", 1)[0]
    if top in collection.members:
        found = (
            _lookup(collection.members[top], target.split(".", 1)[1])
            if "." in target
            else collection.members[top]
        )
        if found is not None:
            candidates.append(found)
    # A name relative to the object, its class, its module, its package chain.
    current: Object | None = scope
    while current is not None and not candidates:
        found = _lookup(current, target)
        if found is not None:
            candidates.append(found)
        current = current.parent
    for found in candidates:
        try:
            final = found.final_target if isinstance(found, Alias) else found
        except Exception:  # alias to something outside the package
            return None
        root = final.path.split(".", 1)[0]
        if root not in collection.members:
            return None
        return final.path
    return None


def _title(role: str, body: str) -> tuple[str, str]:
    """(shown text, target) of a role body, following Sphinx's rules for ``~`` and titles."""
    titled = TITLED_RE.match(body)
    if titled:
        return titled["title"], titled["target"]
    target = body.lstrip("!")
    shown = target
    if target.startswith("~"):
        target = target[1:]
        shown = target.removesuffix("()").rsplit(".", 1)[-1]
    if role in CALLABLE_ROLES and not shown.endswith(")"):
        shown += "()"
    return shown, target


def convert_roles(text: str, scope: Object) -> str:
    """Replace every Sphinx role in ``text`` by an autoref or a code span."""

    def repl(match: re.Match[str]) -> str:
        shown, target = _title(match["role"], match["body"])
        path = _resolve(scope, target)
        code = f"<code>{html.escape(shown)}</code>"
        if path is None:
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE_RE.sub(repl, text)


def _language(code: str) -> str:
    try:
        json.loads(code)
    except ValueError:
        pass
    else:
        return "json"
    try:
        ast.parse(code)
    except SyntaxError:
        return "text"
    return "python"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def convert_literal_blocks(text: str, scope: Object) -> str:
    """Fence reST ``::`` literal blocks; convert roles outside them."""
    lines = text.split("\n")
    out: list[str] = []
    prose: list[str] = []

    def flush_prose() -> None:
        if prose:
            out.append(convert_roles("\n".join(prose), scope))
            prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if not stripped.endswith("::") or stripped.lstrip().startswith((">>>", "```")):
            prose.append(line)
            i += 1
            continue
        # The introducing paragraph: "Text::" -> "Text:", "Text ::" / "::" -> "Text" / nothing.
        base = _indent(line)
        if stripped.strip() == "::":
            intro = None
        elif stripped.endswith(" ::"):
            intro = stripped[:-3].rstrip()
        else:
            intro = stripped[:-1]
        # Find the indented block after optional blank lines.
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j >= len(lines) or _indent(lines[j]) <= base:
            prose.append(line)  # not a literal block after all
            i += 1
            continue
        block_indent = _indent(lines[j])
        k = j
        body: list[str] = []
        while k < len(lines) and (not lines[k].strip() or _indent(lines[k]) >= block_indent):
            body.append(lines[k])
            k += 1
        while body and not body[-1].strip():
            body.pop()
            k -= 1
        if intro is not None:
            prose.append(intro)
        flush_prose()
        code = textwrap.dedent("\n".join(body))
        pad = " " * base
        if intro is not None:
            out.append("")
        out.append(f"{pad}```{_language(code)}")
        out.extend((pad + c) if c else "" for c in code.split("\n"))
        out.append(f"{pad}```")
        i = k
    flush_prose()
    return "\n".join(out)


def convert_docstring(text: str, scope: Object) -> str:
    """The Markdown form of one docstring seen from ``scope``."""
    return convert_literal_blocks(text, scope)


class SphinxRolesToAutorefs(Extension):
    """Rewrite the docstrings of each loaded package (see the module docstring)."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert_docstring(obj.docstring.value, obj)
            stack.extend(m for m in obj.members.values() if not isinstance(m, Alias))
