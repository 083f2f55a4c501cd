"""What the fake refuses per model family, read from the capability table.

One table holds each fact: :mod:`gemini_live.models` (``family_of`` / ``ModelFamily``).
The library's :func:`~gemini_live.models.adapt_setup` fixes or rejects a setup *before* it
is sent; the fake plays the service, so it refuses what the service refuses even when a
client (a raw WebSocket, another SDK) sends it anyway. A fact the table marks unverified
never makes the fake refuse anything, as it never makes the library change anything.

Only :data:`MEDIA_CHUNKS_REFUSED` is not in the table (the table describes setups and
typed text, not the deprecated ``mediaChunks`` field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gemini_live.models import ModelFamily, family_of
from gemini_live.testing._canned import INVALID_ARGUMENT
from gemini_live.types import (
    UNSET,
    GenerationConfig,
    Setup,
    ThinkingConfig,
    ToolResponse,
    UnsetType,
)

__all__ = ["MEDIA_CHUNKS_REFUSED", "FamilyRules", "modalities_reason", "setup_refusal"]

#: Families (``ModelFamily.name``) that close 1007 on ``realtimeInput.mediaChunks``
#: (docs/protocol.md § model families: rejected by 3.1, google/adk-python#5076; 3.8 only
#: "assumed", so not refused here).
MEDIA_CHUNKS_REFUSED: Final = frozenset({"3.1-flash-live"})


def modalities_reason(modalities: Sequence[str]) -> str:
    """The 1007 close reason for response modalities a model does not produce."""
    return (
        f"The requested combination of response modalities ({', '.join(modalities)})"
        " is not supported by the model"
    )


def _verified(fam: ModelFamily, fact: str) -> bool:
    return fact not in fam.unverified


@dataclass(frozen=True, slots=True)
class FamilyRules:
    """What one connection's model refuses after the setup (all False: unknown model)."""

    family: ModelFamily | None = None
    #: ``realtimeInput.mediaChunks`` closes 1007.
    refuse_media_chunks: bool = False
    #: ``clientContent`` other than initial history closes 1007.
    refuse_client_content: bool = False
    #: ``contextUpdate`` closes 1007.
    refuse_context_update: bool = False
    #: A function response with ``scheduling`` / ``willContinue`` closes 1007: the
    #: family takes neither on any backend (3.1). How the service answers them there is
    #: unverified (not documented); the fake refuses them, which is the strict choice
    #: and shows a client that sends them anyway.
    refuse_scheduling: bool = False
    refuse_will_continue: bool = False

    @classmethod
    def for_model(cls, model: str) -> FamilyRules:
        fam = family_of(model)
        if fam is None:
            return cls()
        return cls(
            family=fam,
            refuse_media_chunks=fam.name in MEDIA_CHUNKS_REFUSED,
            refuse_client_content=not fam.client_content_mid_session
            and _verified(fam, "client_content_mid_session"),
            refuse_context_update=not fam.context_update and _verified(fam, "context_update"),
            refuse_scheduling=not fam.scheduling and _verified(fam, "scheduling"),
            refuse_will_continue=not fam.will_continue and _verified(fam, "will_continue"),
        )

    def refuses_tool_response(self, tr: ToolResponse) -> bool:
        """Whether ``tr`` carries a field this family refuses."""
        for fr in tr.function_responses:
            if self.refuse_scheduling and not isinstance(fr.scheduling, UnsetType):
                return True
            if self.refuse_will_continue and not isinstance(fr.will_continue, UnsetType):
                return True
        return False


def setup_refusal(setup: Setup) -> tuple[int, str] | None:
    """The close the service answers ``setup`` with, per its model's family (or None).

    * response modalities the family does not produce (the service default, AUDIO, too):
      1007 "The requested combination of response modalities (...) is not supported by
      the model";
    * the wrong thinking knob (a level on 2.5, a budget on 3.x, any ``thinkingConfig`` on
      3.8 Live), a level the family does not list, a missing required level (3.8 Extended
      Thinking): 1007 "Request contains an invalid argument.";
    * a declared tool ``behavior`` the family does not accept (``NON_BLOCKING`` on 3.1,
      ``BLOCKING`` on 3.8 Extended Thinking): 1007, same reason;
    * ``proactivity.proactiveAudio: false`` where proactive audio is always on (3.8
      Live): 1007, same reason.
    """
    fam = family_of(setup.model)
    if fam is None:
        return None
    gc = setup.generation_config if isinstance(setup.generation_config, GenerationConfig) else None
    reason = _modalities(fam, gc)
    if reason is None and not _thinking_ok(fam, gc):
        reason = INVALID_ARGUMENT
    if reason is None and not (_tools_ok(fam, setup) and _proactivity_ok(fam, setup)):
        reason = INVALID_ARGUMENT
    return None if reason is None else (1007, reason)


def _modalities(fam: ModelFamily, gc: GenerationConfig | None) -> str | None:
    if not _verified(fam, "modalities"):
        return None
    mods = gc.response_modalities if gc is not None else UNSET
    wanted = ["AUDIO"] if isinstance(mods, UnsetType) else [str(m).upper() for m in mods]
    if any(m not in fam.modalities for m in wanted):
        return modalities_reason(wanted)
    return None


def _thinking_ok(fam: ModelFamily, gc: GenerationConfig | None) -> bool:
    if not _verified(fam, "thinking"):
        return True
    tc = gc.thinking_config if gc is not None else UNSET
    if not isinstance(tc, ThinkingConfig):
        return not fam.thinking_required
    has_budget = not isinstance(tc.thinking_budget, UnsetType)
    level = tc.thinking_level
    if fam.thinking == "none":
        return False
    if fam.thinking == "budget":
        return isinstance(level, UnsetType)
    # level knob
    if has_budget:
        return False
    if isinstance(level, UnsetType):
        return not fam.thinking_required
    up = str(level).upper()
    return up in fam.thinking_levels or not _verified(fam, f"thinking_levels.{up}")


def _tools_ok(fam: ModelFamily, setup: Setup) -> bool:
    if not fam.tool_behaviors or not _verified(fam, "tool_behaviors"):
        return True
    tools = [] if isinstance(setup.tools, UnsetType) else setup.tools
    for tool in tools:
        decls = (
            [] if isinstance(tool.function_declarations, UnsetType) else tool.function_declarations
        )
        for decl in decls:
            if isinstance(decl.behavior, str) and decl.behavior not in fam.tool_behaviors:
                return False
    return True


def _proactivity_ok(fam: ModelFamily, setup: Setup) -> bool:
    pro = setup.proactivity
    if isinstance(pro, UnsetType) or not _verified(fam, "proactivity"):
        return True
    return not (fam.proactivity == "always_on" and pro.proactive_audio is False)
