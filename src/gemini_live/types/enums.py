"""String enums for the wire's enum fields.

Wire fields that hold an enum are typed ``str`` so that a value newer than this release
still decodes; compare against these members (they are ``str`` subclasses).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActivityHandling",
    "Behavior",
    "EndSensitivity",
    "FunctionResponseScheduling",
    "InteractionStatus",
    "MediaResolution",
    "Modality",
    "StartSensitivity",
    "ThinkingLevel",
    "TrafficType",
    "TurnCompleteReason",
    "TurnCoverage",
    "VadSignalType",
    "VoiceActivityType",
]


class Modality(StrEnum):
    """A response modality (``GenerationConfig.response_modalities``); a native-audio model
    speaks ``AUDIO`` only."""

    TEXT = "TEXT"
    AUDIO = "AUDIO"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class MediaResolution(StrEnum):
    """How finely the service samples video and image input; lower costs fewer tokens per frame."""

    LOW = "MEDIA_RESOLUTION_LOW"
    MEDIUM = "MEDIA_RESOLUTION_MEDIUM"
    HIGH = "MEDIA_RESOLUTION_HIGH"


class ThinkingLevel(StrEnum):
    """How much the model thinks before answering (``ThinkingConfig.thinking_level``, 3.x
    families)."""

    MINIMAL = "MINIMAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class StartSensitivity(StrEnum):
    """How readily the service's voice activity detection hears the start of speech."""

    HIGH = "START_SENSITIVITY_HIGH"
    LOW = "START_SENSITIVITY_LOW"


class EndSensitivity(StrEnum):
    """How readily the service's voice activity detection decides that speech has ended."""

    HIGH = "END_SENSITIVITY_HIGH"
    LOW = "END_SENSITIVITY_LOW"


class ActivityHandling(StrEnum):
    """Whether the user starting to speak interrupts the model's answer (the default) or not."""

    START_OF_ACTIVITY_INTERRUPTS = "START_OF_ACTIVITY_INTERRUPTS"
    NO_INTERRUPTION = "NO_INTERRUPTION"


class TurnCoverage(StrEnum):
    """Which realtime input a user turn includes: only detected activity, everything, or
    activity plus all video."""

    ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"
    ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"
    AUDIO_ACTIVITY_AND_ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"


class Behavior(StrEnum):
    """How a function is called: ``BLOCKING`` (the model waits for the answer) or
    ``NON_BLOCKING`` (it goes on talking)."""

    BLOCKING = "BLOCKING"
    NON_BLOCKING = "NON_BLOCKING"


class FunctionResponseScheduling(StrEnum):
    """When the model takes up a ``NON_BLOCKING`` function's answer: at once (``INTERRUPT``),
    when it is idle, or silently."""

    SILENT = "SILENT"
    WHEN_IDLE = "WHEN_IDLE"
    INTERRUPT = "INTERRUPT"


class InteractionStatus(StrEnum):
    """Where an interaction stands at a turn end: ``IN_PROGRESS`` means more turns follow
    without user input."""

    IN_PROGRESS = "IN_PROGRESS"
    IDLE = "IDLE"
    REQUIRES_ACTION = "REQUIRES_ACTION"  # deprecated alias of IDLE


class TurnCompleteReason(StrEnum):
    """Why the service ended a turn early (safety, a malformed call, more input needed, ...)."""

    UNSPECIFIED = "TURN_COMPLETE_REASON_UNSPECIFIED"
    MALFORMED_FUNCTION_CALL = "MALFORMED_FUNCTION_CALL"
    RESPONSE_REJECTED = "RESPONSE_REJECTED"
    NEED_MORE_INPUT = "NEED_MORE_INPUT"
    PROHIBITED_INPUT_CONTENT = "PROHIBITED_INPUT_CONTENT"
    GENERATED_CONTENT_SAFETY = "GENERATED_CONTENT_SAFETY"
    GENERATED_AUDIO_SAFETY = "GENERATED_AUDIO_SAFETY"
    BLOCKLIST = "BLOCKLIST"
    MAX_REGENERATION_REACHED = "MAX_REGENERATION_REACHED"


class VoiceActivityType(StrEnum):
    """The kind of a server voice-activity event: speech started or ended."""

    START = "ACTIVITY_START"
    END = "ACTIVITY_END"


class VadSignalType(StrEnum):
    """The kind of a voice-activity-detection signal: start (``SOS``) or end (``EOS``) of speech."""

    SOS = "VAD_SIGNAL_TYPE_SOS"
    EOS = "VAD_SIGNAL_TYPE_EOS"


class TrafficType(StrEnum):
    """Billing class the usage counts under (``UsageMetadata.traffic_type``)."""

    ON_DEMAND = "ON_DEMAND"
    PROVISIONED_THROUGHPUT = "PROVISIONED_THROUGHPUT"
