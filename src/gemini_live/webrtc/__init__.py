"""WebRTC between the browser and the relay: Opus over UDP, the page's messages on a
data channel, the same relay behind it.

Enable it on the app the browser relay already builds::

    from gemini_live.web import Relay, create_app
    relay = Relay(config, authorize=check_user)
    app = create_app(relay, webrtc=True)  # or webrtc=WebRTCRelay(relay, ice_servers=...)

``create_app(relay, webrtc=...)`` adds ``POST <relay_path>/webrtc/offer`` (JSON
``{"type": "offer", "sdp": ...}`` -> ``{"type": "answer", "sdp": ...}``) and tells the
voice page about it; the page then prefers WebRTC and falls back to the WebSocket relay
when the peer connection cannot be made. Each peer connection is one connection of the
:class:`~gemini_live.web.Relay`: the same ``authorize`` hook, limits, turn detection,
tools hooks, conversation store and counters; the page's messages travel on a data
channel instead of WebSocket text frames, and one ``{"type": "close", "code", "reason"}``
message stands for the WebSocket close frame. Audio travels as Opus on two audio tracks:
the browser's microphone (48 kHz, played out by deadline with ``jitter_ms`` of
reordering tolerance, a lost packet's 20 ms filled with silence, resampled once to 16 kHz
for the Live API) and the
model's 24 kHz voice (paced in real time from a bounded queue that barge-in empties).

ICE uses the server's host candidates unless ``ice_servers`` (STUN/TURN) is given; see
``docs/guide/webrtc.md``. Needs the ``webrtc`` extra (``pip install
'gemini-live[webrtc]'``, which brings aiortc).

For measurements: every decoded inbound chunk passes through one method per peer,
``_RtcLink._on_inbound_audio(pcm16k, capture_pts)``, which a test may wrap.
"""

from gemini_live.webrtc._endpoint import (
    OFFER_PATH,
    IceServer,
    WebRTCRelay,
    WebRTCStats,
)

__all__ = ["OFFER_PATH", "IceServer", "WebRTCRelay", "WebRTCStats"]
