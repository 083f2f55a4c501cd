"""Setup-time configuration: generation, speech, VAD, resumption, tools."""

from __future__ import annotations

from gemini_live.types._base import UNSET, JSONObject, UnsetType, WireStruct

__all__ = [
    "AudioTranscriptionConfig",
    "AutomaticActivityDetection",
    "AvatarConfig",
    "ContextWindowCompression",
    "CustomizedAvatar",
    "FunctionDeclaration",
    "GenerationConfig",
    "GoogleSearch",
    "HistoryConfig",
    "LanguageHints",
    "MultiSpeakerVoiceConfig",
    "PrebuiltVoiceConfig",
    "ProactivityConfig",
    "RealtimeInputConfig",
    "ReplicatedVoiceConfig",
    "SafetySetting",
    "SessionResumptionConfig",
    "SlidingWindow",
    "SpeakerVoiceConfig",
    "SpeechConfig",
    "ThinkingConfig",
    "Tool",
    "TranslationConfig",
    "VoiceConfig",
    "VoiceConsentSignature",
]


class PrebuiltVoiceConfig(WireStruct):
    """One of the service's named voices (``voice_name``)."""

    voice_name: str | UnsetType = UNSET


class VoiceConsentSignature(WireStruct):
    """The signature that proves consent for a replicated (cloned) voice."""

    signature: str | UnsetType = UNSET


class ReplicatedVoiceConfig(WireStruct):
    """Voice cloning: a 24 kHz 16-bit WAV sample plus consent (audio or a signature)."""

    mime_type: str | UnsetType = UNSET
    voice_sample_audio: str | UnsetType = UNSET
    consent_audio: str | UnsetType = UNSET
    voice_consent_signature: VoiceConsentSignature | UnsetType = UNSET


class VoiceConfig(WireStruct):
    """One voice: a prebuilt name, a replicated (cloned) voice, or a ``voice`` id.

    ``voice`` is the id of a custom or prebuilt voice from the Voices API
    (google-genai 3.3 ``VoiceConfig.voice``; wire key ``voice``).
    """

    prebuilt_voice_config: PrebuiltVoiceConfig | UnsetType = UNSET
    replicated_voice_config: ReplicatedVoiceConfig | UnsetType = UNSET
    voice: str | UnsetType = UNSET


class SpeakerVoiceConfig(WireStruct):
    """The voice of one named speaker in a multi-speaker setup."""

    speaker: str | UnsetType = UNSET
    voice_config: VoiceConfig | UnsetType = UNSET


class MultiSpeakerVoiceConfig(WireStruct):
    """Voices for several named speakers."""

    speaker_voice_configs: list[SpeakerVoiceConfig] | UnsetType = UNSET


class SpeechConfig(WireStruct):
    """Voice and language of the model's spoken answers."""

    voice_config: VoiceConfig | UnsetType = UNSET
    language_code: str | UnsetType = UNSET
    multi_speaker_voice_config: MultiSpeakerVoiceConfig | UnsetType = UNSET

    @classmethod
    def voice(cls, name: str, language_code: str | UnsetType = UNSET) -> SpeechConfig:
        """Shortcut for a prebuilt voice (names are case-sensitive, e.g. ``"Kore"``)."""
        return cls(
            voice_config=VoiceConfig(prebuilt_voice_config=PrebuiltVoiceConfig(voice_name=name)),
            language_code=language_code,
        )


class ThinkingConfig(WireStruct):
    """2.5 uses ``thinking_budget``; 3.1 / 3.8 Extended Thinking use ``thinking_level``."""

    include_thoughts: bool | UnsetType = UNSET
    thinking_budget: int | UnsetType = UNSET
    thinking_level: str | UnsetType = UNSET


class TranslationConfig(WireStruct):
    """Speech translation: the language to answer in and whether to echo it."""

    target_language_code: str | UnsetType = UNSET
    echo_target_language: bool | UnsetType = UNSET


class GenerationConfig(WireStruct):
    """Sampling and output settings; ``response_modalities`` is one of AUDIO/TEXT/VIDEO."""

    response_modalities: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: float | UnsetType = UNSET
    max_output_tokens: int | UnsetType = UNSET
    candidate_count: int | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    presence_penalty: float | UnsetType = UNSET
    frequency_penalty: float | UnsetType = UNSET
    speech_config: SpeechConfig | UnsetType = UNSET
    thinking_config: ThinkingConfig | UnsetType = UNSET
    media_resolution: str | UnsetType = UNSET
    #: Lives inside generationConfig on the wire; 2.5 native audio only (v1alpha).
    enable_affective_dialog: bool | UnsetType = UNSET
    translation_config: TranslationConfig | UnsetType = UNSET


class AutomaticActivityDetection(WireStruct):
    """The service's voice activity detection: on/off, sensitivities, padding and silence length."""

    disabled: bool | UnsetType = UNSET
    start_of_speech_sensitivity: str | UnsetType = UNSET
    end_of_speech_sensitivity: str | UnsetType = UNSET
    prefix_padding_ms: int | UnsetType = UNSET
    silence_duration_ms: int | UnsetType = UNSET


class RealtimeInputConfig(WireStruct):
    """How realtime input is read: activity detection, interruption and turn coverage."""

    automatic_activity_detection: AutomaticActivityDetection | UnsetType = UNSET
    activity_handling: str | UnsetType = UNSET
    turn_coverage: str | UnsetType = UNSET
    interim_transcript_timestamp_enabled: bool | UnsetType = UNSET


class SessionResumptionConfig(WireStruct):
    """``{}`` asks for handle updates; ``handle`` resumes; ``transparent`` is Vertex-only."""

    handle: str | UnsetType = UNSET
    transparent: bool | UnsetType = UNSET


class SlidingWindow(WireStruct):
    """Context compression by dropping the oldest turns down to ``target_tokens``."""

    target_tokens: int | UnsetType = UNSET


class ContextWindowCompression(WireStruct):
    """Always carries ``sliding_window`` (a config with only a trigger fails at runtime)."""

    trigger_tokens: int | UnsetType = UNSET
    sliding_window: SlidingWindow | UnsetType = UNSET


class LanguageHints(WireStruct):
    """Languages the transcriber should expect."""

    language_codes: list[str] | UnsetType = UNSET


class AudioTranscriptionConfig(WireStruct):
    """``AudioTranscriptionConfig()`` (empty) turns transcription on."""

    language_codes: list[str] | UnsetType = UNSET
    custom_vocabulary: list[str] | UnsetType = UNSET
    word_timestamp: bool | UnsetType = UNSET
    diarization: bool | UnsetType = UNSET
    mode: str | UnsetType = UNSET
    #: Older / deprecated knobs, still accepted by the service. ``language_auto={}`` turns
    #: automatic language detection on.
    language_auto: JSONObject | UnsetType = UNSET
    language_hints: LanguageHints | UnsetType = UNSET
    adaptation_phrases: list[str] | UnsetType = UNSET
    source_text: str | UnsetType = UNSET


class ProactivityConfig(WireStruct):
    """Lets the model decide for itself whether audio or video input calls for an answer."""

    proactive_audio: bool | UnsetType = UNSET
    proactive_video: bool | UnsetType = UNSET


class HistoryConfig(WireStruct):
    """Whether initial history is sent as ``clientContent`` turns before the first realtime
    input."""

    initial_history_in_client_content: bool | UnsetType = UNSET


class CustomizedAvatar(WireStruct):
    """An avatar built from the caller's own image (MIME type and base64 data)."""

    image_mime_type: str | UnsetType = UNSET
    image_data: str | UnsetType = UNSET


class AvatarConfig(WireStruct):
    """A video avatar that speaks the model's answers: a named or customized avatar and its
    bitrates."""

    avatar_name: str | UnsetType = UNSET
    customized_avatar: CustomizedAvatar | UnsetType = UNSET
    audio_bitrate_bps: int | UnsetType = UNSET
    video_bitrate_bps: int | UnsetType = UNSET


class SafetySetting(WireStruct):
    """A harm category and the threshold at which content in it is blocked."""

    category: str | UnsetType = UNSET
    threshold: str | UnsetType = UNSET


class FunctionDeclaration(WireStruct):
    """A function the model may call. ``behavior`` is ``BLOCKING`` or ``NON_BLOCKING``."""

    name: str
    description: str | UnsetType = UNSET
    parameters: JSONObject | UnsetType = UNSET
    parameters_json_schema: JSONObject | UnsetType = UNSET
    response: JSONObject | UnsetType = UNSET
    response_json_schema: JSONObject | UnsetType = UNSET
    behavior: str | UnsetType = UNSET


class GoogleSearch(WireStruct):
    """Grounding with Google Search, optionally excluding some domains."""

    exclude_domains: list[str] | UnsetType = UNSET


class Tool(WireStruct):
    """One tool kind per object: functions, Google Search, code execution or URL context."""

    function_declarations: list[FunctionDeclaration] | UnsetType = UNSET
    google_search: GoogleSearch | UnsetType = UNSET
    code_execution: JSONObject | UnsetType = UNSET
    url_context: JSONObject | UnsetType = UNSET
    google_maps: JSONObject | UnsetType = UNSET

    @classmethod
    def functions(cls, *decls: FunctionDeclaration) -> Tool:
        return cls(function_declarations=list(decls))

    @classmethod
    def google_search_tool(cls) -> Tool:
        return cls(google_search=GoogleSearch())

    @classmethod
    def code_execution_tool(cls) -> Tool:
        return cls(code_execution={})

    @classmethod
    def url_context_tool(cls) -> Tool:
        return cls(url_context={})
