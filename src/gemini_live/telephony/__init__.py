"""Put a voice agent on the phone: Twilio (or Telnyx) media streams bridged to a Live API
session.

:class:`TwilioBridge` is an ASGI WebSocket endpoint (mount it in Starlette or FastAPI,
needs no framework itself). It converts mu-law 8 kHz to PCM 16 kHz and the model's
24 kHz audio back to mu-law 8 kHz paced in 20 ms frames, sends ``clear`` on barge-in,
tracks with ``mark`` messages how much of each reply the caller heard, and reports
``start``/``dtmf``/``stop`` to the app through hooks.

Every stream must prove it comes from the carrier before anything is opened: Twilio's
``X-Twilio-Signature`` on the WebSocket upgrade (:class:`TwilioBridge` ``auth_token=``),
or for Telnyx a per-call token that the app's webhook put in the stream URL
(:class:`StreamTokens`, :class:`TelnyxBridge` ``stream_tokens=``).
"""

from gemini_live.telephony._signature import (
    StreamTokens,
    twilio_signature,
    twilio_signature_valid,
    verify_telnyx_webhook,
)
from gemini_live.telephony._twilio import CallInfo, TelnyxBridge, TwilioBridge

__all__ = [
    "CallInfo",
    "StreamTokens",
    "TelnyxBridge",
    "TwilioBridge",
    "twilio_signature",
    "twilio_signature_valid",
    "verify_telnyx_webhook",
]
