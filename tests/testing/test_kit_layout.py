"""The test kit's shape: a small public surface and no import cycle between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import gemini_live.testing as kit

PACKAGE = Path(kit.__file__).parent


def test_public_names() -> None:
    assert sorted(kit.__all__) == sorted(
        [
            # the server and what tests read from it
            "FakeLiveServer",
            "ServerOptions",
            "ToolScript",
            "ConnectionRecord",
            "Conversation",
            "MemoryBackend",
            "validate_server_frame",
            "TONE_PCM",
            # scripts and cassettes (their modules hold the rest)
            "Script",
            "Cassette",
            "CassetteError",
            "ScriptError",
            "Recorder",
            "RecordingProxy",
            "use_cassette",
            # close reasons, worded as the service words them
            "API_KEY_INVALID",
            "BEARER_INVALID",
            "CANCELLED",
            "DEADLINE_EXPIRED",
            "ENTITY_NOT_FOUND",
            "INTERNAL_ERROR",
            "INVALID_ARGUMENT",
            "SESSION_NOT_FOUND",
            "TEXT_NOT_SUPPORTED",
            "TOKEN_INVALID",
            "UNREGISTERED_CALLER",
        ]
    )


def _module_name(path: Path) -> str:
    return "__init__" if path.stem == "__init__" else path.stem


def _load_time_imports(path: Path) -> set[str]:
    """Kit modules ``path`` imports when it is loaded: top-level statements only, not
    ``if TYPE_CHECKING:`` blocks and not function bodies."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            mod = node.module
            if mod == "gemini_live.testing":
                # ``from gemini_live.testing import script`` names a submodule
                subs = {a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
                out |= subs if len(subs) == len(node.names) else subs | {"__init__"}
            elif mod.startswith("gemini_live.testing."):
                out.add(mod.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gemini_live.testing."):
                    out.add(alias.name.split(".")[2])
    return out


def test_no_import_cycle_between_kit_modules() -> None:
    graph = {_module_name(p): _load_time_imports(p) for p in PACKAGE.glob("*.py")}
    assert "_core" in graph and "_replay" in graph
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, "import cycle: " + " -> ".join((*path, node))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            visit(dep, (*path, node))
        done.add(node)

    for module in sorted(graph):
        visit(module, ())
    # The core knows nothing of cassette replay, not even in a function: the server
    # plugs it in.
    core = ast.parse((PACKAGE / "_core.py").read_text(encoding="utf-8"))
    anywhere = {
        n.module for n in ast.walk(core) if isinstance(n, ast.ImportFrom) and n.module is not None
    }
    assert not anywhere & {f"gemini_live.testing.{m}" for m in ("_replay", "_server", "cassette")}
