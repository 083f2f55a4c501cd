// gemini-live voice page: microphone -> relay, relay -> speaker. Over WebRTC (Opus on
// audio tracks, the messages on a data channel) when the server offers it, else (or when
// the peer connection fails) over the WebSocket relay (PCM16 16 kHz up, 24 kHz down).
// Protocol: docs/web-relay.md, docs/guide/webrtc.md. No build step, no dependencies.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const relayPath = document.querySelector('meta[name="gl-relay"]').content || "/live";
  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + relayPath;
  // The WebRTC offer endpoint (empty: the server has no WebRTC). ``?transport=websocket``
  // skips WebRTC.
  const rtcMeta = document.querySelector('meta[name="gl-webrtc"]');
  const rtcPath = params.get("transport") === "websocket" ? "" : (rtcMeta && rtcMeta.content) || "";
  // Milliseconds the peer connection gets to open before the page falls back to the WebSocket.
  const RTC_OPEN_TIMEOUT_MS = Number(params.get("rtc_timeout_ms")) || 10000;
  // The conversation this tab talks in (with a relay store): kept across reloads and
  // reconnects, so the relay resumes it. ``?conversation=ID`` in the address picks one.
  const CONVERSATION_KEY = "gl-conversation";
  const storage = (() => {
    try { return window.sessionStorage; } catch (e) { return null; }
  })();
  let conversation = params.get("conversation") || (storage && storage.getItem(CONVERSATION_KEY)) || null;
  // Close codes after which the page reconnects by itself: 4012 "moved" (the relay was
  // drained for a deploy: the conversation was saved) and 1012 "service restart".
  const MOVED_CODES = [4012, 1012];
  const MAX_RECONNECTS = 8;
  const rawMic = params.get("raw") === "1"; // no echo cancellation etc. (tests, headsets)
  const $ = (id) => document.getElementById(id);

  const ui = {
    state: $("state"), start: $("start"), stop: $("stop"), talk: $("talk"),
    level: $("level"), speaking: $("speaking"), playing: $("playing"),
    text: $("text"), send: $("send"), form: $("textform"),
    transcript: $("transcript"), detail: $("detail"), transport: $("transport"),
  };

  // Everything a test or a curious developer may want to read.
  const state = (window.glState = {
    status: "idle", detail: "", closeCode: null, closeReason: "",
    framesSent: 0, bytesSent: 0, audioChunks: 0, audioBytes: 0,
    playedMs: 0, interruptions: 0, turns: 0, playing: false, transcript: [],
    conversation, reconnects: 0, pendingTexts: [], awaitingTurns: [],
    // "webrtc" or "websocket" (null before the first connection); why WebRTC was not used.
    transport: null, rtcError: "",
    // WebRTC: the inbound audio's energy and samples (getStats), the model's voice arriving.
    rtcEnergy: 0, rtcSamples: 0,
  });

  // The live connection: { kind, send(obj), sendAudio(buf), isOpen(), close(code, reason) }.
  let conn = null;
  const remoteAudio = new Audio(); // plays the model's voice in WebRTC mode
  remoteAudio.autoplay = true;
  let micCtx = null;
  let micStream = null;
  let outCtx = null;
  let sources = [];
  let playhead = 0; // context time where the next chunk starts
  let replyStart = null; // context time the current reply started playing
  let replyScheduledMs = 0;
  let userLine = null;
  let modelLine = null;
  let replyLine = null; // the transcript line of the reply being played
  let turnDetection = "vad";
  let stoppedByUser = false;
  let reconnectAttempt = 0; // consecutive automatic reconnects (reset once admitted)
  let reconnectTimer = null;
  // Texts sent and not acknowledged yet ({id, text}): re-sent with their ids after a
  // reconnect. The relay acknowledges a text ("text_ack") once its conversation saved
  // it, and acknowledges a re-sent one it already has without sending it again, so a
  // text is answered once even if the relay was killed right after taking it.
  const pendingTexts = state.pendingTexts;
  const MAX_PENDING_TEXTS = 32;
  // Ids of acknowledged texts whose turn end has not arrived (oldest first). Each turn
  // end ends the oldest. After a reconnect the page names them ("await_turns"): a relay
  // that took over after a crash sends the turn end the dead one could not write
  // ("turn_complete" with the id), or says the turn is still "open" or "unknown".
  const awaitingTurns = state.awaitingTurns;
  let canAwaitTurns = false;
  function endAwaited(id) {
    const at = awaitingTurns.indexOf(id);
    if (at >= 0) awaitingTurns.splice(at, 1);
  }
  let textSeq = 0;
  function newTextId() {
    const c = window.crypto;
    const rnd = c && c.randomUUID ? c.randomUUID() : Math.random().toString(36).slice(2);
    textSeq += 1;
    return "t" + textSeq + "-" + rnd;
  }

  function setStatus(s, detail, problem) {
    state.status = s;
    ui.state.textContent = s;
    ui.state.className = "pill " + s;
    if (detail !== undefined) {
      ui.detail.textContent = detail;
      ui.detail.classList.toggle("problem", !!problem);
      state.detail = detail;
    }
  }

  // What a close means for the person at the page: what happened, then what to do.
  // Codes: docs/web-relay.md ("Close codes"). ``problem`` false: nothing went wrong.
  function explainClose(code, reason, byUser) {
    const again = "Press Start to try again.";
    if (byUser && (code === 1000 || code === 1005)) {
      return { problem: false, text: "Stopped. Press Start to talk again." };
    }
    switch (code) {
      case 1000:
        return { problem: false, text: "The conversation ended. Press Start to begin a new one." };
      case 1001:
        return { problem: true, text: "The server went away (it may be restarting). " + again };
      case 1003:
        return {
          problem: true,
          text: "The server did not accept a message from this page. Reload the page, then press Start.",
        };
      case 1006:
        return {
          problem: true,
          text: "The connection to the server was lost. Check that it is still running, then press Start.",
        };
      case 1008:
        if (/idle/.test(reason)) {
          return { problem: false, text: "Closed after a long quiet spell. Press Start to talk again." };
        }
        if (/age/.test(reason)) {
          return { problem: false, text: "This conversation reached its time limit. Press Start to begin a new one." };
        }
        return { problem: true, text: "The server closed the connection by its rules. " + again };
      case 1009:
        return { problem: true, text: "A message was too big for the server. Send a shorter text, then press Start." };
      case 1011:
        return { problem: true, text: "The server hit an internal error (its log has the details). " + again };
      case 1012:
        return { problem: true, text: "The server is restarting. Wait a moment, then press Start." };
      case 4012:
        return { problem: true, text: "The server moved this conversation and the page could not reconnect. " + again };
      case 1013:
        return { problem: true, text: "The server is busy with other conversations. Try again in a minute." };
      case 4401:
        return {
          problem: true,
          text: "Not signed in: the server did not accept this page. Open the link it printed (with its token) or sign in again, then press Start.",
        };
      case 4403:
        return {
          problem: true,
          text: "This page is not allowed to connect from this address. Open it at the address the server printed.",
        };
      case 4429:
        return { problem: true, text: "Slow down: too many messages or connections. Wait a minute, then press Start." };
      case 4502:
        return { problem: true, text: "The model service could not be reached: try again. If it keeps failing, the server's key or network needs a look." };
      default:
        return { problem: true, text: `The connection closed (code ${code}). ` + again };
    }
  }

  function resetBadges() {
    ui.speaking.textContent = "silent";
    ui.speaking.classList.remove("on");
    ui.level.style.width = "0%";
  }

  function line(cls, text) {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = text;
    ui.transcript.appendChild(li);
    state.transcript.push({ who: cls, text });
    li.scrollIntoView({ block: "end" });
    return li;
  }

  function appendTo(li, who, text) {
    li.textContent += text;
    state.transcript.push({ who, text });
  }

  function send(obj) {
    if (conn && conn.isOpen()) conn.send(obj);
  }

  function setTransport(kind) {
    state.transport = kind;
    ui.transport.textContent = kind === "webrtc" ? "WebRTC" : kind === "websocket" ? "WebSocket" : "-";
    ui.transport.classList.toggle("on", kind === "webrtc");
  }

  // ---- playback --------------------------------------------------------------------

  function playedMs() {
    if (replyStart === null || !outCtx) return 0;
    return Math.max(0, Math.min(replyScheduledMs, (outCtx.currentTime - replyStart) * 1000));
  }

  function setPlaying(on) {
    state.playing = on;
    ui.playing.textContent = on ? "playing" : "quiet";
    ui.playing.classList.toggle("on", on);
  }

  function playChunk(buf) {
    if (!outCtx) return;
    const pcm = new Int16Array(buf);
    if (pcm.length === 0) return;
    const audio = outCtx.createBuffer(1, pcm.length, 24000);
    const ch = audio.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const src = outCtx.createBufferSource();
    src.buffer = audio;
    src.connect(outCtx.destination);
    const now = outCtx.currentTime;
    if (playhead < now + 0.02) playhead = now + 0.02;
    if (replyStart === null) {
      replyLine = modelLine;
      replyStart = playhead;
      replyScheduledMs = 0;
      setPlaying(true);
      send({ type: "playback", state: "playing", played_ms: 0 });
    }
    src.start(playhead);
    playhead += audio.duration;
    replyScheduledMs += audio.duration * 1000;
    sources.push(src);
    src.onended = () => {
      sources = sources.filter((s) => s !== src);
      if (sources.length === 0 && replyStart !== null) {
        const ms = replyScheduledMs;
        state.playedMs += ms;
        replyStart = null;
        setPlaying(false);
        send({ type: "playback", state: "drained", played_ms: Math.round(ms) });
      }
    };
    state.audioChunks += 1;
    state.audioBytes += buf.byteLength;
  }

  function stopPlayback() {
    // Barge-in: silence now, forget everything queued.
    const ms = playedMs();
    const had = replyStart !== null;
    const old = sources;
    sources = [];
    for (const s of old) {
      s.onended = null;
      try { s.stop(); } catch (e) { /* not started yet */ }
    }
    playhead = outCtx ? outCtx.currentTime : 0;
    replyStart = null;
    setPlaying(false);
    if (had) {
      state.playedMs += ms;
      send({ type: "playback", state: "stopped", played_ms: Math.round(ms) });
    }
    return had ? ms : null;
  }

  // ---- relay messages --------------------------------------------------------------

  function onMessage(msg) {
    switch (msg.type) {
      case "ready":
        turnDetection = msg.turn_detection;
        reconnectAttempt = 0;
        if (msg.conversation) {
          conversation = state.conversation = msg.conversation;
          if (storage) {
            try { storage.setItem(CONVERSATION_KEY, msg.conversation); } catch (e) { /* full */ }
          }
        }
        // A relay with a store answers "await_turns" (and says so); an older one would
        // refuse the message, one without a store has no record to answer from.
        canAwaitTurns = msg.await_turns === true;
        if (!canAwaitTurns) awaitingTurns.length = 0;
        if (awaitingTurns.length) send({ type: "await_turns", ids: awaitingTurns.slice() });
        for (const p of pendingTexts) send({ type: "text", text: p.text, id: p.id });
        ui.talk.hidden = turnDetection !== "manual";
        setStatus("open", msg.session_id ? "session " + msg.session_id : "connected");
        break;
      case "state":
        // "open" (with the session id) once the upstream session opened, at the first
        // message; "reconnecting" and "open" again around a reconnect.
        setStatus(msg.state, msg.session_id ? "session " + msg.session_id : undefined);
        break;
      case "input_transcript":
        if (!userLine) userLine = line("user", "You: ");
        appendTo(userLine, "user", msg.text);
        break;
      case "output_transcript":
      case "text":
        if (!modelLine) modelLine = line("model", "Gemini: ");
        appendTo(modelLine, "model", msg.text);
        if (replyStart !== null && replyLine === null) replyLine = modelLine;
        break;
      case "interrupted":
        state.interruptions += 1;
        {
          const heard = stopPlayback();
          const cut = replyLine || modelLine;
          if (cut) {
            const note = heard === null ? "" : ` after ${(heard / 1000).toFixed(1)} s`;
            appendTo(cut, "model", ` [interrupted${note}]`);
            cut.classList.add("cut");
          }
        }
        replyLine = null;
        modelLine = null;
        break;
      case "turn_complete":
        state.turns += 1;
        if (msg.id) {
          endAwaited(msg.id); // a turn end a crashed relay could not send ("replayed")
        } else if (awaitingTurns.length) {
          awaitingTurns.shift();
        } else {
          // Its text_ack is still on the way: that text is answered already.
          const p = pendingTexts.find((q) => !q.answered);
          if (p) p.answered = true;
        }
        userLine = null;
        modelLine = null;
        break;
      case "text_ack":
        {
          const at = pendingTexts.findIndex((p) => p.id === msg.id);
          if (at >= 0) {
            const [p] = pendingTexts.splice(at, 1);
            if (!p.answered && !awaitingTurns.includes(p.id)) {
              if (awaitingTurns.length >= MAX_PENDING_TEXTS) awaitingTurns.shift();
              awaitingTurns.push(p.id);
              // Re-sent after a reconnect and taken before: its turn may be over already.
              if (msg.duplicate && canAwaitTurns) send({ type: "await_turns", ids: [p.id] });
            }
          }
        }
        break;
      case "turn_status":
        // "open": accepted, its turn not over in the stored conversation (the next turn
        // end ends it); "unknown": the conversation has no record of it.
        if (msg.state !== "open") endAwaited(msg.id);
        break;
      case "vad":
        ui.speaking.textContent = msg.speaking ? "speaking" : "silent";
        ui.speaking.classList.toggle("on", msg.speaking);
        if (msg.speaking) userLine = null;
        break;
      case "tool_call":
        line("note", "calling " + msg.names.join(", "));
        break;
      default:
        break;
    }
  }

  // ---- microphone ------------------------------------------------------------------

  // True while this page's connection is the live one (a late microphone result from an
  // earlier one is dropped).
  function live(c) {
    return conn === c && c.isOpen();
  }

  // Echo cancellation, noise suppression and auto gain, in both modes (``?raw=1``: off).
  function micConstraints() {
    return {
      channelCount: 1,
      echoCancellation: !rawMic,
      noiseSuppression: !rawMic,
      autoGainControl: !rawMic,
    };
  }

  // The level meter, and in WebSocket mode the PCM frames (WebRTC sends the track).
  async function startMic(socket) {
    const stream = socket.stream || (await navigator.mediaDevices.getUserMedia({ audio: micConstraints() }));
    if (!live(socket)) {
      if (!socket.stream) stream.getTracks().forEach((t) => t.stop());
      return;
    }
    micStream = stream;
    const ctx = (micCtx = new AudioContext());
    const base = document.querySelector('link[rel="stylesheet"]').href.replace(/page\.css$/, "");
    await ctx.audioWorklet.addModule(base + "mic-worklet.js");
    if (!live(socket) || micCtx !== ctx) return; // closed while the worklet loaded
    const node = new AudioWorkletNode(ctx, "mic-capture");
    node.port.onmessage = (e) => {
      const { pcm, rms } = e.data;
      ui.level.style.width = Math.min(100, Math.round(Math.sqrt(rms) * 180)) + "%";
      if (socket.kind === "websocket" && live(socket)) {
        socket.sendAudio(pcm);
        state.framesSent += 1;
        state.bytesSent += pcm.byteLength;
      }
    };
    ctx.createMediaStreamSource(stream).connect(node);
    // Keep the graph pulled without making the mic audible.
    const mute = ctx.createGain();
    mute.gain.value = 0;
    node.connect(mute).connect(ctx.destination);
  }

  function stopMic() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    if (micCtx) micCtx.close().catch(() => {});
    micStream = null;
    micCtx = null;
    ui.level.style.width = "0%";
  }

  // ---- connection ------------------------------------------------------------------

  function withConversation(url) {
    return conversation ? url + "?conversation=" + encodeURIComponent(conversation) : url;
  }

  function relayUrl() {
    return withConversation(wsBase);
  }

  // What a closed connection means for the page (both transports end here once).
  function onClosed(c, code, reason) {
    if (c.ended) return;
    c.ended = true;
    if (conn !== c) return; // an earlier connection, replaced already
    state.closeCode = code;
    state.closeReason = reason;
    if (!stoppedByUser && MOVED_CODES.includes(code) && reconnectAttempt < MAX_RECONNECTS) {
      stopPlayback();
      stopMic();
      resetBadges();
      ui.stop.disabled = true;
      ui.text.disabled = ui.send.disabled = true;
      scheduleReconnect();
      return;
    }
    const why = explainClose(code, reason || "", stoppedByUser);
    // The code and the server's reason stay readable for whoever debugs it.
    const raw = reason ? ` (${code}: ${reason})` : ` (${code})`;
    setStatus(why.problem ? "closed" : "stopped", why.text + (why.problem ? raw : ""), why.problem);
    stopPlayback();
    stopMic();
    resetBadges();
    ui.start.disabled = false;
    ui.stop.disabled = true;
    ui.text.disabled = ui.send.disabled = true;
  }

  function openWebSocket() {
    const socket = new WebSocket(relayUrl());
    socket.binaryType = "arraybuffer";
    const c = {
      kind: "websocket",
      send: (obj) => socket.send(JSON.stringify(obj)),
      sendAudio: (buf) => socket.send(buf),
      isOpen: () => socket.readyState === WebSocket.OPEN,
      close: (code, reason) => socket.close(code, reason),
    };
    socket.onmessage = (e) => {
      if (typeof e.data === "string") onMessage(JSON.parse(e.data));
      else playChunk(e.data);
    };
    const opened = new Promise((resolve) => {
      socket.onopen = () => resolve(true);
      socket.onerror = () => resolve(false); // onclose follows and says what happened
    });
    socket.onclose = (e) => onClosed(c, e.code, e.reason);
    return { c, opened };
  }

  function within(ms, what, promise) {
    let timer = null;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(what + " timed out")), ms);
    });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  // WebRTC: the microphone as an Opus track, the messages on a data channel, the model's
  // voice on the track the server adds. Resolves once the data channel is open; throws
  // (having closed everything) when it cannot be made: the caller falls back.
  async function openWebRTC() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: micConstraints() });
    const pc = new RTCPeerConnection();
    const dc = pc.createDataChannel("gemini-live", { ordered: true });
    let closed = false;
    const c = {
      kind: "webrtc",
      stream,
      pc,
      send: (obj) => dc.send(JSON.stringify(obj)),
      sendAudio: () => {},
      isOpen: () => !closed && dc.readyState === "open",
      close: (code, reason) => finish(code, reason),
    };
    function teardown() {
      if (closed) return;
      closed = true;
      // The data channel flushes what was sent (audio_end) before it closes.
      const closePc = () => pc.close();
      dc.onclose = closePc;
      try { dc.close(); } catch (e) { closePc(); }
      setTimeout(closePc, 1000);
      stream.getTracks().forEach((t) => t.stop());
      if (remoteAudio.srcObject) remoteAudio.srcObject = null;
    }
    function finish(code, reason) {
      const was = closed;
      teardown();
      if (!was) onClosed(c, code, reason);
    }
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    dc.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "close") finish(msg.code, msg.reason || ""); // the close frame
      else onMessage(msg);
    };
    pc.ontrack = (e) => {
      remoteAudio.srcObject = e.streams[0] || new MediaStream([e.track]);
      remoteAudio.play().catch(() => {});
    };
    conn = c;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await within(3000, "gathering ICE candidates", new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.onicegatheringstatechange = () => {
          if (pc.iceGatheringState === "complete") resolve();
        };
      })).catch(() => {}); // what was gathered so far goes
      const res = await fetch(withConversation(rtcPath), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
        credentials: "same-origin",
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(`offer refused: ${res.status} ${body.error || ""}`.trim());
      await pc.setRemoteDescription(body);
      await within(RTC_OPEN_TIMEOUT_MS, "the peer connection", new Promise((resolve, reject) => {
        if (dc.readyState === "open") return resolve();
        dc.onopen = () => resolve();
        pc.onconnectionstatechange = () => {
          if (pc.connectionState === "failed") reject(new Error("the peer connection failed"));
        };
      }));
    } catch (err) {
      closed = true;
      c.ended = true;
      pc.close();
      stream.getTracks().forEach((t) => t.stop());
      if (conn === c) conn = null;
      throw err;
    }
    dc.onclose = () => finish(1006, "");
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") finish(1006, "the peer connection failed");
    };
    watchInbound(c);
    return c;
  }

  // WebRTC: whether the model's voice is arriving (the playing badge), from getStats.
  function watchInbound(c) {
    const timer = setInterval(() => {
      if (conn !== c || !c.isOpen()) {
        clearInterval(timer);
        return;
      }
      c.pc.getStats().then((report) => {
        report.forEach((r) => {
          if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
          state.rtcEnergy = r.totalAudioEnergy || 0;
          state.rtcSamples = r.totalSamplesReceived || 0;
          if (conn === c) setPlaying((r.audioLevel || 0) > 0.01);
        });
      }).catch(() => {});
    }, 200);
  }

  // A move (4012/1012): reconnect after a growing, jittered pause; the load balancer
  // picks a server that admits, and the relay resumes the conversation from its store.
  function scheduleReconnect() {
    const delay = Math.min(8000, 250 * 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
    reconnectAttempt += 1;
    state.reconnects += 1;
    setStatus("reconnecting", "The server is moving this conversation. Reconnecting...");
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      start().catch((err) => {
        setStatus("closed", "The page could not reconnect: " + err + ". Press Start.", true);
        ui.start.disabled = false;
      });
    }, delay);
  }

  async function start() {
    ui.start.disabled = true;
    stoppedByUser = false;
    if (reconnectTimer !== null) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
    setStatus("connecting", "Connecting to the server...");
    if (!outCtx || outCtx.state === "closed") outCtx = new AudioContext({ sampleRate: 24000 });
    if (outCtx.state === "suspended") await outCtx.resume();
    let socket = null;
    if (rtcPath) {
      try {
        socket = await openWebRTC();
        state.rtcError = "";
      } catch (err) {
        // No peer connection (blocked UDP, no WebRTC in this browser, refused): the
        // WebSocket relay carries the conversation instead.
        state.rtcError = String((err && err.message) || err);
        socket = null;
      }
    } else {
      state.rtcError = "the server offers no WebRTC";
    }
    if (socket === null) {
      const ws = openWebSocket();
      socket = conn = ws.c;
      setTransport("websocket");
      if (!(await ws.opened) || !live(socket)) return;
    } else {
      setTransport("webrtc");
      if (!live(socket)) return;
    }
    ui.stop.disabled = false;
    ui.text.disabled = ui.send.disabled = false;
    try {
      await startMic(socket);
    } catch (err) {
      // After the socket closed nobody needs the microphone: say nothing.
      if (live(socket)) line("note", "microphone unavailable: " + err);
    }
  }

  function stop() {
    stoppedByUser = true;
    if (reconnectTimer !== null) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      ui.start.disabled = false;
      setStatus("stopped", "Stopped. Press Start to talk again.");
    }
    send({ type: "audio_end" });
    if (conn) conn.close(1000, "user stopped");
  }

  ui.start.onclick = () =>
    start().catch((err) => {
      setStatus("closed", "The page could not start: " + err + ". Reload the page and try again.", true);
      ui.start.disabled = false;
    });
  ui.stop.onclick = stop;
  ui.talk.onpointerdown = () => send({ type: "activity_start" });
  ui.talk.onpointerup = () => send({ type: "activity_end" });
  ui.form.onsubmit = (e) => {
    e.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    // Bounded: past this many unacknowledged texts the oldest is no longer re-sent.
    if (pendingTexts.length >= MAX_PENDING_TEXTS) pendingTexts.shift();
    const id = newTextId();
    pendingTexts.push({ id, text });
    send({ type: "text", text, id });
    line("user", "You: " + text);
    ui.text.value = "";
  };

  if (params.get("autostart") === "1") ui.start.click();
})();
