"""The test kit's shape: a small public surface and no import cycle between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gemini_live.testing as kit
from gemini_live import _pcm
from gemini_live.testing import _canned as canned
from gemini_live.testing import cassette

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
            "CassetteDivergence",
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


def _kit_module(node: ast.ImportFrom | ast.Import) -> set[str]:
    out: set[str] = set()
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


def _imports(path: Path) -> set[str]:
    """Kit modules ``path`` imports anywhere: at load time, under ``if TYPE_CHECKING:``
    and inside functions alike (a circle closed by a lazy or type-only import is still a
    circle). The one exception is a module ``__getattr__``: a deprecated name's shim."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    shims = {
        id(n)
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
        for n in ast.walk(f)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.ImportFrom, ast.Import)) and id(node) not in shims:
            out |= _kit_module(node)
    return out


def test_no_import_cycle_between_kit_modules() -> None:
    graph = {_module_name(p): _imports(p) for p in PACKAGE.glob("*.py")}
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
    assert not graph["_core"] & {"_replay", "_server", "cassette"}
    # The cassette format sits below the server that replays it.
    assert not graph["cassette"] & {"_core", "_replay", "_server", "__init__"}
    # The connection's rooms meet only in _core (see _connection.py): each imports the
    # shared base and no other room.
    rooms = {"_input", "_replies", "_tool_calls"}
    for room in rooms:
        assert "_connection" in graph[room]
        assert not graph[room] & (rooms | {"_core"}), room
    assert not graph["_connection"] & (rooms | {"_core"})


#: Files allowed over the size rule, and why.
_BIG_FILES: dict[str, str] = {
    "cassette.py": "format, recorder and recording proxy; split when cassettes are reworked",
}


def test_rooms_stay_small() -> None:
    """The house rule for the kit: files under ~650 lines, classes under 500."""
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if path.name not in _BIG_FILES:
            assert lines <= 660, f"{path.name}: {lines} lines"
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                size = node.end_lineno - node.lineno + 1
                assert size <= 500, f"{path.name}: class {node.name} is {size} lines"


def test_use_cassette_has_its_old_path_for_one_release() -> None:
    with pytest.warns(DeprecationWarning, match="import use_cassette from gemini_live.testing"):
        from gemini_live.testing.cassette import use_cassette
    assert use_cassette is kit.use_cassette
    with pytest.raises(AttributeError):
        getattr(cassette, "no_such_name")  # noqa: B009


def test_the_fakes_audio_facts_agree_with_the_clients() -> None:
    """The fake states the service's audio facts itself (on purpose, see _canned.py); this
    cross-check makes a change on either side a visible decision, not a silent drift."""
    assert (canned.OUTPUT_RATE, canned.OUTPUT_MIME) == (_pcm.OUTPUT_RATE, _pcm.OUTPUT_MIME)
    assert canned.output_mime(canned.OUTPUT_RATE) == canned.OUTPUT_MIME
    assert canned.pcm_rate("audio/pcm") == canned.INPUT_DEFAULT_RATE == 16000
