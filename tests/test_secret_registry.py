"""The secret registry is bounded and ``redact()`` stays fast however many credentials
were registered (issue 18 item 5): 100,000 tokens used to make ``redact()`` 2,600x slower."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest

from gemini_live import errors
from gemini_live.errors import SecretRegistry, redact, register_secret


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> SecretRegistry:
    fresh = SecretRegistry()
    monkeypatch.setattr(errors, "secret_registry", fresh)
    return fresh


def _best_of(fn: Callable[[], object], rounds: int = 7, calls: int = 20) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / calls


def test_100k_registrations_keep_the_registry_bounded_and_redact_fast(
    registry: SecretRegistry,
) -> None:
    text = ("a server said something long about the session, " * 20)[:1000]
    for i in range(8):
        register_secret(f"small-registry-secret-{i}")
    small = _best_of(lambda: redact(text))

    api_key = "my-own-weird-key-0123456789"
    register_secret(api_key, permanent=True)
    for _ in range(100_000):
        register_secret(secrets.token_urlsafe(24))

    assert len(registry) <= registry.max_recent + registry.max_permanent
    assert registry.evicted >= 100_000 - registry.max_recent
    big = _best_of(lambda: redact(text))
    # Generous: a bounded registry costs a bounded factor (unbounded, it was ~2,600x).
    assert big < 60 * small + 0.0005, (small, big)
    # The long-lived key survives 100,000 short-lived registrations ...
    assert redact(f"echo {api_key}") == "echo ***"
    # ... and the most recent tokens are still redacted.
    last = secrets.token_urlsafe(24)
    register_secret(last)
    assert redact(f"token {last} echoed") == "token *** echoed"


def test_tokens_the_patterns_find_are_not_stored(registry: SecretRegistry) -> None:
    for i in range(1000):
        register_secret(f"auth_tokens/minted-token-{i:04d}")
    register_secret("AIzaSyA1234567890abcdefghijklmnop")
    register_secret("ya29.a0AfH6SMBx-some-oauth-token")
    assert len(registry) == 0
    assert registry.covered == 1002
    # Still redacted wherever they appear.
    assert redact("use auth_tokens/minted-token-0042 now") == "use *** now"
    assert redact("k=AIzaSyA1234567890abcdefghijklmnop;") == "k=***;"


def test_registering_again_keeps_a_secret_recent(registry: SecretRegistry) -> None:
    small = SecretRegistry(max_recent=3, max_permanent=1)
    small.register("first-secret")
    small.register("second-secret")
    small.register("third-secret")
    small.register("first-secret")  # touched: now the most recent
    small.register("fourth-secret")
    assert "first-secret" in small
    assert "second-secret" not in small
    assert small.evicted == 1
    # A permanent secret pushed out of a full permanent tier becomes recent, not lost.
    small.register("key-one-long", permanent=True)
    small.register("key-two-long", permanent=True)
    assert "key-one-long" in small and "key-two-long" in small
    assert len(small) <= 4


def test_longest_secret_first_and_forget(registry: SecretRegistry) -> None:
    register_secret("abcd1234")
    register_secret("abcd1234-and-more")
    assert redact("x abcd1234-and-more y") == "x *** y"
    errors.forget_secret("abcd1234-and-more")
    assert redact("x abcd1234-and-more y") == "x ***-and-more y"
    errors.forget_secret("never-registered")
    assert "abcd" not in repr(registry)


def test_registry_bounds_must_be_sane() -> None:
    with pytest.raises(errors.ConfigError):
        SecretRegistry(max_recent=0)


def test_registering_from_threads_while_redacting(registry: SecretRegistry) -> None:
    import threading

    errors_seen: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5_000):
                register_secret(f"thread-{n}-secret-{i:05d}")
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors_seen.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        redact("thread-0-secret-04999 and friends")
    for t in threads:
        t.join(timeout=30)
    assert errors_seen == []
    assert len(registry) <= registry.max_recent + registry.max_permanent
