"""Every public module has an ``__all__``; every name in it exists and is documented.

Public modules are those whose dotted path has no ``_``-prefixed part. A class or function
is documented by its own docstring (not the signature ``dataclass`` writes when there is
none); a constant or type alias by a ``#:`` comment above its definition, a string right
after it, or a mention in its module's docstring; a module by its docstring.

``KNOWN_UNDOCUMENTED`` listed the gaps; it is empty now and stays so (a name added to it
that gains a docstring makes the last test fail until it is removed again).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import types
from functools import cache

import pytest

import gemini_live


def _public_modules() -> list[str]:
    names = ["gemini_live"]
    names.extend(
        info.name
        for info in pkgutil.walk_packages(gemini_live.__path__, "gemini_live.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    )
    return sorted(names)


PUBLIC_MODULES = _public_modules()

#: Names exported today without documentation (module of definition + name).
KNOWN_UNDOCUMENTED: frozenset[str] = frozenset()


@cache
def _package_sources() -> str:
    """The source of every module of the package (constants may be defined anywhere)."""
    parts = []
    for info in pkgutil.walk_packages(gemini_live.__path__, "gemini_live."):
        if info.name.startswith("gemini_live.cli") and info.name != "gemini_live.cli":
            continue  # the CLI modules import optional extras
        parts.append(inspect.getsource(importlib.import_module(info.name)))
    return "\n".join([inspect.getsource(gemini_live), *parts])


def _has_own_docstring(obj: object) -> bool:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
            return False  # the signature dataclass writes in place of a docstring
    else:
        doc = getattr(obj, "__doc__", None)
    return bool(doc and doc.strip())


def _constant_documented(module: types.ModuleType, name: str) -> bool:
    if f"``{name}``" in (module.__doc__ or ""):
        return True
    comment = re.compile(rf"^[ \t]*#:[^\n]*\n(?:[ \t]*#:[^\n]*\n)*{re.escape(name)}\b\s*[:=]", re.M)
    trailing = re.compile(rf"^{re.escape(name)}\b[^\n]*\n(?:    [^\n]*\n)*?\"\"\"", re.M)
    source = _package_sources()
    return bool(comment.search(source) or trailing.search(source))


def _where(module: types.ModuleType, name: str, obj: object) -> str:
    """The dotted name a gap is listed under: where a class or function is defined."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"{module.__name__}.{name}"


def _undocumented() -> set[str]:
    gaps: set[str] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if name == "__version__":
                continue
            documented_by_docstring = (
                isinstance(obj, types.ModuleType)
                or inspect.isclass(obj)
                or inspect.isfunction(obj)
                or inspect.isbuiltin(obj)
            )
            if documented_by_docstring:
                ok = _has_own_docstring(obj)
            else:  # constants and type aliases
                ok = _constant_documented(module, name)
            if not ok:
                gaps.add(_where(module, name, obj))
    return gaps


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_existing_unique_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ has duplicates"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names missing attributes: {missing}"


def test_every_export_is_documented() -> None:
    new_gaps = _undocumented() - KNOWN_UNDOCUMENTED
    assert not new_gaps, f"exported without documentation: {sorted(new_gaps)}"


def test_known_gaps_only_shrink() -> None:
    fixed = KNOWN_UNDOCUMENTED - _undocumented()
    assert not fixed, f"documented now: remove from KNOWN_UNDOCUMENTED: {sorted(fixed)}"


def test_subpackages_reexport_the_same_objects() -> None:
    from gemini_live import tools, transport
    from gemini_live.tools import _arq, _executor, _registry, _runner
    from gemini_live.transport import base

    modules = (_registry, _runner, _executor, _arq)
    for name in tools.__all__:
        (source,) = [m for m in modules if name in m.__all__]
        assert getattr(tools, name) is getattr(source, name), name
    for name in base.__all__:
        assert getattr(transport, name) is getattr(base, name), name
