"""The pytest plugin of gemini-live: fixtures for the fake server, a session and cassettes.

Installed with ``pip install "gemini-live[pytest]"``, pytest loads it by itself (entry point
``pytest11``). It needs no ``asyncio_mode`` setting and no pytest-asyncio: an ``async def``
test that uses one of its fixtures (or is marked ``@pytest.mark.gemini_live``) is run by
the plugin in a fresh event loop, and the fixtures are started in that loop::

    async def test_greeting(live_session, fake_live_server):
        await live_session.send_text("hello")
        ...

Fixtures (each a value started in the test's own loop, stopped after it):

* ``fake_live_server``: a started :class:`~gemini_live.testing.FakeLiveServer`; options
  from ``@pytest.mark.fake_live_server(reply_chunks=2, ...)``.
* ``live_session``: a :class:`gemini_live.Session` connected to ``fake_live_server``.
* ``live_cassette``: :func:`~gemini_live.testing.use_cassette` for the test, the file
  ``cassettes/<test module>/<test name>.jsonl`` beside the test file, or the one named by
  ``@pytest.mark.live_cassette("path.jsonl", match="strict", ...)``. The value is the
  replaying server (or the recording proxy); point the app at its ``url``.

Option ``--cassettes=replay-only|skip-missing|record-missing|record-all`` sets what a
missing cassette does (see :func:`~gemini_live.testing.use_cassette`; ``replay-only`` is
the one for CI). With pytest-asyncio installed, tests it runs (``asyncio_mode = auto`` or
``@pytest.mark.asyncio``) may use these fixtures too: the plugin then runs the test itself.
A test run by the plugin is bounded by ``@pytest.mark.gemini_live(timeout=SECONDS)``
(default 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, cast

import pytest

__all__ = ["DEFAULT_TIMEOUT"]

#: Seconds a test run by the plugin may take (``@pytest.mark.gemini_live(timeout=...)``).
DEFAULT_TIMEOUT: Final = 60.0

_MARKERS: Final = (
    "gemini_live(timeout=60): run this async test with the gemini-live plugin's event loop",
    "fake_live_server(**options): FakeLiveServer options for the fake_live_server fixture",
    "live_cassette(path=None, **options): the cassette (and use_cassette options) of the "
    "live_cassette fixture",
)


class _Pending:
    """A fixture value started in the test's event loop (by :func:`_run`)."""

    async def start(
        self, stack: contextlib.AsyncExitStack, resolve: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        raise NotImplementedError


class _PendingServer(_Pending):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    async def start(
        self, stack: contextlib.AsyncExitStack, resolve: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        from gemini_live.testing import FakeLiveServer

        return await stack.enter_async_context(FakeLiveServer(**self.options))


class _PendingSession(_Pending):
    def __init__(self, server: _PendingServer) -> None:
        self.server = server

    async def start(
        self, stack: contextlib.AsyncExitStack, resolve: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        import gemini_live as gl

        server = await resolve(self.server)
        return await stack.enter_async_context(gl.connect(url=server.url))


class _PendingCassette(_Pending):
    def __init__(self, path: Path, options: dict[str, Any]) -> None:
        self.path = path
        self.options = options

    async def start(
        self, stack: contextlib.AsyncExitStack, resolve: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        from gemini_live.testing import use_cassette

        return await stack.enter_async_context(use_cassette(self.path, **self.options))


def pytest_addoption(parser: pytest.Parser) -> None:
    from gemini_live.testing._server import CASSETTE_MODES

    group = parser.getgroup("gemini-live")
    group.addoption(
        "--cassettes",
        choices=CASSETTE_MODES,
        default=None,
        help="what a missing cassette does: replay-only (fail: use it in CI), skip-missing, "
        "record-missing; record-all records every cassette again",
    )


def pytest_configure(config: pytest.Config) -> None:
    from gemini_live.testing._server import set_cassette_mode

    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    set_cassette_mode(config.getoption("cassettes", None))


def pytest_unconfigure(config: pytest.Config) -> None:
    from gemini_live.testing._server import set_cassette_mode

    set_cassette_mode(None)


@pytest.fixture
def fake_live_server(request: pytest.FixtureRequest) -> _PendingServer:
    """A :class:`~gemini_live.testing.FakeLiveServer`, started for an async test."""
    marker = request.node.get_closest_marker("fake_live_server")
    options = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError("@pytest.mark.fake_live_server takes keyword options only")
    return _PendingServer(options)


@pytest.fixture
def live_session(fake_live_server: _PendingServer) -> _PendingSession:
    """A session connected to ``fake_live_server``, for an async test."""
    return _PendingSession(fake_live_server)


def _cassette_path(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_") or "test"
    module = Path(str(request.node.path))
    return module.parent / "cassettes" / module.stem / f"{name}.jsonl"


@pytest.fixture
def live_cassette(request: pytest.FixtureRequest) -> _PendingCassette:
    """:func:`~gemini_live.testing.use_cassette` for this test, for an async test."""
    marker = request.node.get_closest_marker("live_cassette")
    options = dict(marker.kwargs) if marker is not None else {}
    path: Path | None = None
    if marker is not None and marker.args:
        path = Path(marker.args[0])
        if not path.is_absolute():
            path = Path(str(request.node.path)).parent / path
    return _PendingCassette(path or _cassette_path(request), options)


def _timeout(item: pytest.Function) -> float:
    marker = item.get_closest_marker("gemini_live")
    value = marker.kwargs.get("timeout", DEFAULT_TIMEOUT) if marker is not None else None
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise pytest.UsageError(f"@pytest.mark.gemini_live(timeout=...) must be > 0, got {value!r}")
    return float(value)


async def _run(func: Callable[..., Awaitable[Any]], args: dict[str, Any], within: float) -> None:
    started: dict[int, Any] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def resolve(value: Any) -> Any:
            if not isinstance(value, _Pending):
                return value
            if id(value) not in started:
                started[id(value)] = await value.start(stack, resolve)
            return started[id(value)]

        async with asyncio.timeout(within):
            resolved = {name: await resolve(value) for name, value in args.items()}
            await func(**resolved)


def _original(obj: Any) -> Any:
    """The test function under any sync wrapper (pytest-asyncio wraps its tests)."""
    return inspect.unwrap(obj)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    ours = any(isinstance(v, _Pending) for v in args.values())
    marked = pyfuncitem.get_closest_marker("gemini_live") is not None
    obj = pyfuncitem.obj
    func = obj if inspect.iscoroutinefunction(obj) else _original(obj)
    if not inspect.iscoroutinefunction(func):
        if ours:
            raise pytest.UsageError(
                f"{pyfuncitem.nodeid}: the gemini-live fixtures need an `async def` test"
            )
        return None
    if not ours and not marked:
        return None  # not ours to run (pytest-asyncio or another plugin may run it)
    asyncio.run(_run(cast("Callable[..., Awaitable[Any]]", func), args, _timeout(pyfuncitem)))
    return True
