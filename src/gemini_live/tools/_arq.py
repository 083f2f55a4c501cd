"""An :class:`~gemini_live.tools.Executor` on `arq <https://arq-docs.helpmanual.io/>`_
(Redis): long-running tools run on an arq worker process and their results come back
through Redis to whichever process owns the conversation.

Needs the ``arq`` extra (``pip install "gemini-live[arq]"``).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Final

import msgspec

from gemini_live.errors import ConfigError, redact
from gemini_live.tools._executor import ExecutorCall, RemoteToolError
from gemini_live.tools._registry import ToolArgumentError, ToolContext, ToolRegistry, ToolResult

if TYPE_CHECKING:
    from arq.connections import ArqRedis, RedisSettings

__all__ = ["ArqExecutor", "arq_function_name", "arq_worker_settings"]

#: The arq function of tool ``name`` is ``"gemini_live:" + name``.
FUNCTION_PREFIX: Final = "gemini_live:"
#: The registry on the worker, in arq's per-worker context.
_CTX_KEY: Final = "gemini_live_registry"


def arq_function_name(tool: str) -> str:
    """The arq function name a tool runs under on the worker."""
    return FUNCTION_PREFIX + tool


def _settings(redis: str | RedisSettings) -> RedisSettings:
    from arq.connections import RedisSettings

    if isinstance(redis, RedisSettings):
        return redis
    if isinstance(redis, str):
        try:
            return RedisSettings.from_dsn(redis)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"not a Redis URL ({redact(str(exc))})") from None
    raise ConfigError(f"redis must be a redis:// URL or arq RedisSettings, got {type(redis)}")


class ArqExecutor:
    """Runs tools on arq workers; see :class:`~gemini_live.tools.Executor`.

    Declare a tool with ``executor=arq_executor`` (or ``executor="arq"`` and
    ``ToolRunner(executors={"arq": arq_executor})``). The worker process runs
    :func:`arq_worker_settings` built from a registry with the same tools.

    Args:
        redis: A ``redis://`` URL or arq ``RedisSettings`` (the URL's password never
            appears in reprs or errors).
        name: The executor's name in stored task records (default ``"arq"``).
        queue_name: The arq queue (default: arq's default queue).
        poll_delay: Seconds between Redis polls while waiting for a result.
    """

    def __init__(
        self,
        redis: str | RedisSettings,
        *,
        name: str = "arq",
        queue_name: str | None = None,
        poll_delay: float = 0.05,
    ) -> None:
        try:
            import arq  # noqa: F401
        except ImportError:  # pragma: no cover - the extra is installed in the tests
            raise ConfigError('ArqExecutor needs arq: pip install "gemini-live[arq]"') from None
        if not isinstance(name, str) or not name or name == "inline":
            raise ConfigError("an executor's name must be a non-empty str other than 'inline'")
        if not poll_delay > 0:
            raise ConfigError("poll_delay must be positive")
        self._name = name
        self._settings = _settings(redis)
        self.queue_name = queue_name
        self.poll_delay = poll_delay
        self._pool: ArqRedis | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        s = self._settings
        return f"<ArqExecutor {self._name!r} {s.host}:{s.port}/{s.database}>"

    async def _redis(self) -> ArqRedis:
        async with self._lock:
            if self._pool is None:
                from arq.connections import create_pool

                kwargs: dict[str, Any] = {}
                if self.queue_name is not None:
                    kwargs["default_queue_name"] = self.queue_name
                self._pool = await create_pool(self._settings, **kwargs)
            return self._pool

    def _job(self, pool: ArqRedis, job: str) -> Any:
        from arq.jobs import Job

        if self.queue_name is None:
            return Job(job, pool)
        return Job(job, pool, _queue_name=self.queue_name)

    async def submit(self, call: ExecutorCall) -> str:
        """Queue the call on arq; returns the arq job id."""
        pool = await self._redis()
        job = await pool.enqueue_job(arq_function_name(call.tool), call.tool, dict(call.args))
        if job is None:  # pragma: no cover - only with a caller-chosen job id
            raise RuntimeError("arq refused the job (a job with this id exists)")
        return str(job.job_id)

    async def result(self, job: str) -> Any:
        """Wait for the job (polling Redis); returns the tool's result or raises its error."""
        pool = await self._redis()
        envelope = await self._job(pool, job).result(timeout=None, poll_delay=self.poll_delay)
        return _unwrap(envelope)

    async def cancel(self, job: str) -> bool:
        """Abort the job (the worker needs ``allow_abort_jobs``, which
        :func:`arq_worker_settings` sets)."""
        pool = await self._redis()
        try:
            return bool(await self._job(pool, job).abort(timeout=0.0, poll_delay=self.poll_delay))
        except TimeoutError:
            return True  # asked; the worker stops it when it sees the abort

    async def aclose(self) -> None:
        """Close the Redis connection."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()


def _unwrap(envelope: object) -> Any:
    if not isinstance(envelope, dict):
        raise RemoteToolError(
            {
                "message": "the arq job returned something that is not a gemini-live result",
                "type": "ExecutorError",
                "retryable": False,
            }
        )
    if "error" in envelope:
        return _raise(envelope["error"])
    value = envelope.get("ok")
    parts = envelope.get("parts")
    scheduling = envelope.get("scheduling")
    if parts is None and scheduling is None:
        return value
    return ToolResult(value, scheduling=scheduling, parts=parts)


def _raise(body: object) -> Any:
    raise RemoteToolError(body if isinstance(body, dict) else {"message": str(body)})


async def _run_tool(ctx: dict[str, Any], name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arq job: run tool ``name`` of the worker's registry; never raises (the error
    body travels back in the result)."""
    from gemini_live.tools._runner import _error_body

    registry: ToolRegistry = ctx[_CTX_KEY]
    spec = registry.get(name)
    if spec is None:
        return {
            "error": {
                "message": f"the worker has no tool {name!r}",
                "type": "UnknownFunction",
                "retryable": False,
            }
        }
    tool_ctx = ToolContext(None, name, args)
    try:
        pos, kw = spec.bind(args, tool_ctx)
        if spec.kind == "async":
            value = await spec.fn(*pos, **kw)
        elif spec.kind == "sync":
            value = await asyncio.to_thread(spec.fn, *pos, **kw)
            if inspect.isawaitable(value):
                value = await value
        elif spec.kind == "async_gen":
            value = None
            async for item in spec.fn(*pos, **kw):
                value = item
        else:
            value = await asyncio.to_thread(lambda: list(spec.fn(*pos, **kw))[-1:] or [None])
            value = value[0]
        if isinstance(value, ToolResult):
            out: dict[str, Any] = {"ok": msgspec.to_builtins(value.value, str_keys=True)}
            if value.parts:
                out["parts"] = [dict(p) for p in value.parts]
            if value.scheduling is not None:
                out["scheduling"] = str(value.scheduling)
            return out
        return {"ok": msgspec.to_builtins(value, str_keys=True)}
    except asyncio.CancelledError:
        raise
    except ToolArgumentError as exc:
        return {"error": _error_body(exc)}
    except Exception as exc:
        return {"error": _error_body(exc)}


def arq_worker_settings(
    registry: ToolRegistry,
    redis: str | RedisSettings,
    *,
    queue_name: str | None = None,
    **settings: Any,
) -> type:
    """An arq ``WorkerSettings`` class that runs ``registry``'s tools.

    Run it with arq's CLI: in ``worker.py`` write
    ``WorkerSettings = arq_worker_settings(registry, "redis://...")`` and start
    ``arq worker.WorkerSettings``. Each tool is an arq function
    (:func:`arq_function_name`); a tool declared ``idempotent`` may be retried by arq
    after a worker crash (``max_tries`` 5), any other runs at most once. Extra keyword
    arguments become ``WorkerSettings`` attributes (``job_timeout``, ``max_jobs``...).
    """
    from arq.worker import func

    if not isinstance(registry, ToolRegistry):
        raise ConfigError("arq_worker_settings takes a ToolRegistry")
    functions = [
        func(
            _run_tool,
            name=arq_function_name(spec_name),
            max_tries=5 if spec.idempotent else 1,
        )
        for spec_name in registry.names
        if (spec := registry.get(spec_name)) is not None
    ]

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx[_CTX_KEY] = registry

    attrs: dict[str, Any] = {
        "functions": functions,
        "redis_settings": _settings(redis),
        "on_startup": on_startup,
        "allow_abort_jobs": True,
        "job_timeout": 3600,
    }
    if queue_name is not None:
        attrs["queue_name"] = queue_name
    attrs.update(settings)
    return type("WorkerSettings", (), attrs)
