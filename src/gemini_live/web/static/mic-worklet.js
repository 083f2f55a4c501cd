// AudioWorklet: microphone -> 16 kHz mono PCM16, posted in 40 ms frames with their level.
// Resamples from the context rate by linear interpolation (the browser's mic runs at
// 44.1/48 kHz; the Live API takes 16 kHz). 40 ms is the upper end of the Live API's
// recommended 20-40 ms chunks: half the messages (and relay work) of 20 ms frames.
class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.target = 16000;
    this.step = sampleRate / this.target; // input samples per output sample
    this.pos = 0; // fractional read position into the carried input
    this.carry = new Float32Array(0);
    this.samples = 640; // 40 ms at 16 kHz
    this.frame = new Int16Array(this.samples);
    this.fill = 0;
    this.sumSq = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const ch = input[0];
    const buf = new Float32Array(this.carry.length + ch.length);
    buf.set(this.carry, 0);
    buf.set(ch, this.carry.length);
    let pos = this.pos;
    while (pos + 1 < buf.length) {
      const i = Math.floor(pos);
      const f = pos - i;
      let s = buf[i] * (1 - f) + buf[i + 1] * f;
      s = Math.max(-1, Math.min(1, s));
      this.sumSq += s * s;
      this.frame[this.fill++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.fill === this.frame.length) {
        const rms = Math.sqrt(this.sumSq / this.frame.length);
        this.port.postMessage({ pcm: this.frame.buffer, rms }, [this.frame.buffer]);
        this.frame = new Int16Array(this.samples);
        this.fill = 0;
        this.sumSq = 0;
      }
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.carry = buf.slice(keep);
    this.pos = pos - keep;
    return true;
  }
}

registerProcessor("mic-capture", MicCapture);
