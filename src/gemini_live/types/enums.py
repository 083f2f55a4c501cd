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
    TEXT = "TEXT"
    AUDIO = "AUDIO"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class MediaResolution(StrEnum):
    LOW = "MEDIA_RESOLUTION_LOW"
    MEDIUM = "MEDIA_RESOLUTION_MEDIUM"
    HIGH = "MEDIA_RESOLUTION_HIGH"


class ThinkingLevel(StrEnum):
    MINIMAL = "MINIMAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class StartSensitivity(StrEnum):
    HIGH = "START_SENSITIVITY_HIGH"
    LOW = "START_SENSITIVITY_LOW"


class EndSensitivity(StrEnum):
    HIGH = "END_SENSITIVITY_HIGH"
    LOW = "END_SENSITIVITY_LOW"


class ActivityHandling(StrEnum):
    START_OF_ACTIVITY_INTERRUPTS = "START_OF_ACTIVITY_INTERRUPTS"
    NO_INTERRUPTION = "NO_INTERRUPTION"


class TurnCoverage(StrEnum):
    ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"
    ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"
    AUDIO_ACTIVITY_AND_ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"


class Behavior(StrEnum):
    BLOCKING = "BLOCKING"
    NON_BLOCKING = "NON_BLOCKING"


class FunctionResponseScheduling(StrEnum):
    SILENT = "SILENT"
    WHEN_IDLE = "WHEN_IDLE"
    INTERRUPT = "INTERRUPT"


class InteractionStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    IDLE = "IDLE"
    REQUIRES_ACTION = "REQUIRES_ACTION"  # deprecated alias of IDLE


class TurnCompleteReason(StrEnum):
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
    START = "ACTIVITY_START"
    END = "ACTIVITY_END"


class VadSignalType(StrEnum):
    SOS = "VAD_SIGNAL_TYPE_SOS"
    EOS = "VAD_SIGNAL_TYPE_EOS"


class TrafficType(StrEnum):
    ON_DEMAND = "ON_DEMAND"
    PROVISIONED_THROUGHPUT = "PROVISIONED_THROUGHPUT"
