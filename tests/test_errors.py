"""Errors: close-code classification (live-protocol.md §7), messages, secret redaction."""

from __future__ import annotations

import pytest

from gemini_live import errors
from gemini_live.errors import (
    AudioFormatError,
    AuthError,
    ConcurrencyError,
    ConfigError,
    ConnectError,
    ConnectionDropped,
    ContextExhausted,
    GeminiLiveError,
    InvalidConfig,
    MalformedMessage,
    ModelNotFound,
    Phase,
    PolicyViolation,
    ProtocolStateError,
    QueueFullError,
    QuotaExceeded,
    ServerError,
    ServiceError,
    SessionClosedError,
    SessionNotFound,
    SetupTimeout,
    TransportClosed,
    TransportError,
    classify_close,
    excerpt,
    redact,
)
from gemini_live.transport import CloseInfo

# (code, reason, phase, expected class, retryable): one row per line of §7, plus the phases
# where the same text means different things.
CLOSE_TABLE: list[tuple[int, str, Phase, type[ServiceError], bool]] = [
    (1000, "The operation was cancelled.", "stream", ConnectionDropped, True),
    (1006, "", "stream", ConnectionDropped, True),
    (1006, "", "setup", ConnectionDropped, True),
    (1007, "Request contains an invalid argument.", "setup", InvalidConfig, False),
    (1007, "Request contains an invalid argument.", "stream", InvalidConfig, False),
    (1007, "Cannot extract voices from a non-audio request.", "setup", InvalidConfig, False),
    (1007, "API key expired. Please renew the API key.", "setup", AuthError, False),
    (1007, "API key not valid. Please pass a valid API key.", "setup", AuthError, False),
    (1007, "User location is not supported for the API use.", "setup", AuthError, False),
    (
        1007,
        "Missing or malformed auth token. Please pass it in an access_token query parameter.",
        "setup",
        AuthError,
        False,
    ),
    (1007, "Context length exceeded for this session.", "stream", ContextExhausted, False),
    (1007, "Request is too long: token limit reached.", "stream", ContextExhausted, False),
    (
        1008,
        "models/gemini-9-live is not found for API version v1beta, or is not supported for "
        "bidiGenerateContent. Call ListModels to see the list of available models.",
        "setup",
        ModelNotFound,
        False,
    ),
    (1008, "Requested entity was not found.", "setup", SessionNotFound, False),
    (1008, "Requested entity was not found.", "stream", PolicyViolation, False),
    (
        1008,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
        "setup",
        AuthError,
        False,
    ),
    (
        1008,
        "Operation is not implemented, or supported, or enabled.",
        "stream",
        PolicyViolation,
        False,
    ),
    (1008, "The operation was aborted.", "stream", ConnectionDropped, True),
    (1008, "BidiGenerateContent session not found", "setup", SessionNotFound, False),
    (
        1008,
        "Publisher Model `projects/p/locations/us-central1/publishers/google/models/x` was not "
        "found or your project does not have access to it.",
        "setup",
        ModelNotFound,
        False,
    ),
    (1008, "Permission denied on resource project p.", "setup", AuthError, False),
    (1011, "Internal error encountered.", "stream", ServerError, True),
    (1011, "Deadline expired before operation could complete.", "stream", ServerError, True),
    (1011, "The service is currently unavailable.", "stream", ServerError, True),
    (1011, "The service is currently unavailable.", "setup", ServerError, True),
    (1011, "RESOURCE_EXHAUSTED", "setup", QuotaExceeded, True),
    (
        1011,
        "You exceeded your current quota, please check your plan and billing details.",
        "stream",
        QuotaExceeded,
        True,
    ),
    (
        1011,
        "Request trace id: 21d399562688c813, [ORIGINAL ERROR] "
        "extensible_stubs::OVERLOADED_TOO_MANY_RETRIES_PER_REQUEST: You are mos",
        "stream",
        QuotaExceeded,
        True,
    ),
    # Codes without a documented reason: decided by the code alone.
    (1001, "", "stream", ConnectionDropped, True),
    (1012, "", "stream", ConnectionDropped, True),
    (1013, "", "stream", ServerError, True),
    (1014, "", "stream", ServerError, True),
    (1002, "", "stream", PolicyViolation, False),
    (1003, "", "stream", PolicyViolation, False),
    (1009, "", "stream", PolicyViolation, False),
    (1005, "", "stream", ConnectionDropped, True),
    (4003, "", "stream", ServerError, True),
]


@pytest.mark.parametrize(
    ("code", "reason", "phase", "cls", "retryable"),
    CLOSE_TABLE,
    ids=[f"{c}-{p}-{r[:30]}" for c, r, p, _, _ in CLOSE_TABLE],
)
def test_classify_close(
    code: int, reason: str, phase: Phase, cls: type[ServiceError], retryable: bool
) -> None:
    err = classify_close(code, reason, phase=phase, session_id="sess-1")
    assert type(err) is cls
    assert err.retryable is retryable
    assert (err.code, err.phase, err.session_id, err.local) == (code, phase, "sess-1", False)
    assert err.reason == redact(reason)
    text = str(err)
    assert f"during {phase} with code {code}" in text
    assert "(session sess-1)" in text


def test_local_keepalive_timeout_is_retryable_and_marked_local() -> None:
    err = classify_close(1011, "keepalive ping timeout", local=True)
    assert err.local is True
    assert err.retryable is True
    assert isinstance(err, ConnectionDropped)
    assert (
        str(err) == "connection closed locally during stream with code 1011: keepalive ping timeout"
    )


def test_service_error_message_without_reason_or_session() -> None:
    err = classify_close(1006, "")
    assert str(err) == "connection closed during stream with code 1006"
    assert err.session_id is None
    assert err.phase == "stream"


def test_classify_close_redacts_reason() -> None:
    err = classify_close(1007, "API key not valid: AIzaSyA-1234567890abcdefghijk", phase="setup")
    assert isinstance(err, AuthError)
    assert "AIza" not in err.reason
    assert "AIza" not in str(err)
    assert "***" in str(err)


def test_standard_token_count_message_is_context_exhausted() -> None:
    reason = "The input token count (134123) exceeds the maximum number of tokens allowed (131072)."
    assert isinstance(classify_close(1007, reason), ContextExhausted)


# --------------------------------------------------------------------------- hierarchy


def test_every_exported_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, GeminiLiveError), name


def test_builtin_bases() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(AudioFormatError, ConfigError)
    assert issubclass(SessionClosedError, RuntimeError)
    assert issubclass(ProtocolStateError, RuntimeError)
    for cls in (
        InvalidConfig,
        AuthError,
        ModelNotFound,
        SessionNotFound,
        PolicyViolation,
        ContextExhausted,
        QuotaExceeded,
        ServerError,
        ConnectionDropped,
    ):
        assert issubclass(cls, ServiceError)
    assert GeminiLiveError.retryable is False
    assert QueueFullError("full").retryable is False


def test_connect_error_retryable_by_status() -> None:
    assert ConnectError("dns").retryable is True
    assert ConnectError("dns").status is None
    for status in (400, 401, 403, 404):
        assert ConnectError("refused", status=status).retryable is False
    assert ConnectError("busy", status=503).retryable is True
    assert ConnectError("busy", status=429).retryable is True
    assert SetupTimeout("slow").retryable is True


def test_malformed_message_keeps_first_200_bytes() -> None:
    assert MalformedMessage("bad").frame is None
    assert MalformedMessage("bad", frame=b"x" * 500).frame == b"x" * 200
    assert MalformedMessage("bad", frame=b"{}").frame == b"{}"


def test_transport_tree() -> None:
    for cls in (ConnectError, SetupTimeout, ServiceError, TransportClosed):
        assert issubclass(cls, TransportError)
    assert issubclass(TransportError, GeminiLiveError)
    assert issubclass(ConcurrencyError, GeminiLiveError)
    assert issubclass(ConcurrencyError, RuntimeError)


def test_transport_closed_is_a_retryable_connection_loss() -> None:
    info = CloseInfo(1011, "Internal error encountered.")
    closed = TransportClosed(info)
    assert closed.retryable is True
    assert closed.info is info
    assert str(closed) == "transport is closed (code 1011: Internal error encountered.)"
    assert str(TransportClosed(None)) == "transport is closed"
    # the same class is what the transport package exports
    from gemini_live import transport
    from gemini_live.transport import base

    assert transport.TransportClosed is TransportClosed is base.TransportClosed


def test_connection_error_underscore_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="TransportError"):
        alias = errors.ConnectionError_
    assert alias is TransportError
    assert "ConnectionError_" not in errors.__all__
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018


SIXTEEN_MIB = 16 * 1024 * 1024


def test_huge_bad_value_gives_a_short_message() -> None:
    """A 16 MiB value is cut before it is redacted, stored or logged."""
    value = "9" * SIXTEEN_MIB
    err = MalformedMessage(f"bad goAway.timeLeft {value!r}")
    text = str(err)
    assert len(text) <= MalformedMessage.max_message_chars + 60
    assert text.startswith("bad goAway.timeLeft '")
    assert text.endswith(f"[cut; {SIXTEEN_MIB + 22} characters in all]")
    assert len(str(GeminiLiveError("x" * SIXTEEN_MIB))) <= GeminiLiveError.max_message_chars + 60


def test_cut_never_leaves_part_of_a_secret() -> None:
    key = "AIzaSyA1234567890abcdefghijklmnop"
    limit = MalformedMessage.max_message_chars
    # Straddling the limit itself, and the edge of the window that is redacted.
    for edge in (limit, limit + 128):
        for cut_at in range(1, len(key)):
            text = str(MalformedMessage("p" + " " * (edge - cut_at - 1) + key + " " * 400))
            assert "AIza" not in text
            kept = text.split(" \u2026 [cut;")[0].rstrip()
            assert not kept.endswith(("A", "AI", "AIz")), (edge, cut_at, kept[-10:])
    # a key inside the kept part is redacted, one beyond it is simply gone
    text = str(MalformedMessage(f"bad {key} " + "y " * 500 + key))
    assert key not in text and text.startswith("bad *** y y")


def test_short_messages_are_unchanged() -> None:
    assert str(MalformedMessage("bad audioOffset 'x'")) == "bad audioOffset 'x'"
    assert str(ConfigError("n" * 1000)) == "n" * 1000


def test_excerpt_never_copies_a_huge_value() -> None:
    assert excerpt("short") == "'short'"
    assert excerpt(b"\x00\x01") == "b'\\x00\\x01'"
    big = "A" * SIXTEEN_MIB
    out = excerpt(big, 20)
    assert out == repr("A" * 20) + f"\u2026 ({SIXTEEN_MIB} in all)"
    assert excerpt(memoryview(b"abc" * 100), 3) == "b'abc'\u2026 (300 in all)"
    assert excerpt(list(range(1000)), 10) == "[0, 1, 2, \u2026"
    assert excerpt(3.5) == "3.5"


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key AIzaSyA1234567890abcdefghijklmnop end", "key *** end"),
        ("token auth_tokens/abc.def-ghi_jkl", "token ***"),
        ("Authorization: Token auth_tokens/xyz", "Authorization: Token ***"),
        ("oauth ya29.a0AfH6SMB-xyz_123.more", "oauth ***"),
        ("wss://h/p?key=SECRETVALUE&alt=json", "wss://h/p?key=***&alt=json"),
        ("wss://h/p?KEY=whatever", "wss://h/p?KEY=***"),
        ("x?access_token=tok123 more", "x?access_token=*** more"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: bearer abc, next", "authorization: bearer ***, next"),
        ("nothing secret here", "nothing secret here"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_register_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "secret_registry", errors.SecretRegistry())
    errors.register_secret("s3cr3t-w31rd!")
    errors.register_secret("abc")  # too short: would mangle ordinary text
    assert redact("use s3cr3t-w31rd! twice: s3cr3t-w31rd!") == "use *** twice: ***"
    assert redact("abc") == "abc"
    assert "s3cr3t" not in str(GeminiLiveError("leaked s3cr3t-w31rd!"))
    assert "s3cr3t" not in str(classify_close(1007, "bad key s3cr3t-w31rd!"))


def test_error_messages_are_redacted() -> None:
    key = "AIzaSyA1234567890abcdefghijklmnop"
    assert key not in str(GeminiLiveError(f"connect failed ?key={key}"))
    assert key not in str(ConfigError(f"bad key {key}"))
    assert key not in str(MalformedMessage(f"frame had {key}"))
    assert key not in str(ConnectError(f"refused for {key}", status=403))


def test_redact_keeps_ordinary_words_after_token() -> None:
    text = "The input token count (150000) exceeds the maximum number of tokens allowed."
    assert redact(text) == text
