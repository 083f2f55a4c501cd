// gemini-live voice page: microphone -> relay (PCM16 16 kHz), relay -> speaker (PCM16 24 kHz).
// Protocol: docs/web-relay.md. No build step, no dependencies.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const relayPath = document.querySelector('meta[name="gl-relay"]').content || "/live";
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + relayPath;
  const rawMic = params.get("raw") === "1"; // no echo cancellation etc. (tests, headsets)
  const $ = (id) => document.getElementById(id);

  const ui = {
    state: $("state"), start: $("start"), stop: $("stop"), talk: $("talk"),
    level: $("level"), speaking: $("speaking"), playing: $("playing"),
    text: $("text"), send: $("send"), form: $("textform"),
    transcript: $("transcript"), detail: $("detail"),
  };

  // Everything a test or a curious developer may want to read.
  const state = (window.glState = {
    status: "idle", closeCode: null, closeReason: "",
    framesSent: 0, bytesSent: 0, audioChunks: 0, audioBytes: 0,
    playedMs: 0, interruptions: 0, turns: 0, playing: false, transcript: [],
  });

  let ws = null;
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

  function setStatus(s, detail) {
    state.status = s;
    ui.state.textContent = s;
    ui.state.className = "pill " + s;
    if (detail !== undefined) ui.detail.textContent = detail;
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
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
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
        userLine = null;
        modelLine = null;
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

  async function startMic() {
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: !rawMic,
        noiseSuppression: !rawMic,
        autoGainControl: !rawMic,
      },
    });
    micCtx = new AudioContext();
    const base = document.querySelector('link[rel="stylesheet"]').href.replace(/page\.css$/, "");
    await micCtx.audioWorklet.addModule(base + "mic-worklet.js");
    const node = new AudioWorkletNode(micCtx, "mic-capture");
    node.port.onmessage = (e) => {
      const { pcm, rms } = e.data;
      ui.level.style.width = Math.min(100, Math.round(Math.sqrt(rms) * 180)) + "%";
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(pcm);
        state.framesSent += 1;
        state.bytesSent += pcm.byteLength;
      }
    };
    micCtx.createMediaStreamSource(micStream).connect(node);
    // Keep the graph pulled without making the mic audible.
    const mute = micCtx.createGain();
    mute.gain.value = 0;
    node.connect(mute).connect(micCtx.destination);
  }

  function stopMic() {
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    if (micCtx) micCtx.close();
    micStream = null;
    micCtx = null;
    ui.level.style.width = "0%";
  }

  // ---- connection ------------------------------------------------------------------

  async function start() {
    ui.start.disabled = true;
    setStatus("connecting", "");
    outCtx = new AudioContext({ sampleRate: 24000 });
    if (outCtx.state === "suspended") await outCtx.resume();
    ws = new WebSocket(wsUrl);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      if (typeof e.data === "string") onMessage(JSON.parse(e.data));
      else playChunk(e.data);
    };
    ws.onclose = (e) => {
      state.closeCode = e.code;
      state.closeReason = e.reason;
      setStatus("closed", e.reason ? `closed ${e.code}: ${e.reason}` : `closed ${e.code}`);
      stopPlayback();
      stopMic();
      ui.start.disabled = false;
      ui.stop.disabled = true;
      ui.text.disabled = ui.send.disabled = true;
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ui.stop.disabled = false;
    ui.text.disabled = ui.send.disabled = false;
    try {
      await startMic();
    } catch (err) {
      line("note", "microphone unavailable: " + err);
    }
  }

  function stop() {
    send({ type: "audio_end" });
    if (ws) ws.close(1000, "user stopped");
  }

  ui.start.onclick = () => start().catch((err) => setStatus("closed", String(err)));
  ui.stop.onclick = stop;
  ui.talk.onpointerdown = () => send({ type: "activity_start" });
  ui.talk.onpointerup = () => send({ type: "activity_end" });
  ui.form.onsubmit = (e) => {
    e.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    send({ type: "text", text });
    line("user", "You: " + text);
    ui.text.value = "";
  };

  if (params.get("autostart") === "1") ui.start.click();
})();
