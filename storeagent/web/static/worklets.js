// Audio worklets for "Try it". The AudioContext runs at 16 kHz, the rate of the agent's audio websocket, so
// no resampling happens here (the browser resamples the microphone into the context).
const FRAME = 320; // 20 ms at 16 kHz

// Microphone -> 20 ms L16 frames (Int16, little-endian: every browser runs on a little-endian CPU).
class CaptureL16 extends AudioWorkletProcessor {
  constructor() { super(); this.buf = new Int16Array(FRAME); this.n = 0; }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    let peak = 0;
    for (let i = 0; i < ch.length; i++) {
      const s = Math.max(-1, Math.min(1, ch[i]));
      peak = Math.max(peak, Math.abs(s));
      this.buf[this.n++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.n === FRAME) {
        this.port.postMessage({ pcm: this.buf.buffer, peak }, [this.buf.buffer]);
        this.buf = new Int16Array(FRAME); this.n = 0; peak = 0;
      }
    }
    return true;
  }
}

// Agent speech -> speaker, in order with the agent's marks: a mark is reported "played" when playout passes
// it and "cleared" when a {"type":"clear"} (barge-in) drops it with the speech queued before it. {"type":"pause"}
// holds playout where it is (queue and marks kept) until {"type":"resume"} or a clear (docs/audio-websocket.md).
class PlayoutL16 extends AudioWorkletProcessor {
  constructor() {
    super(); this.queue = []; this.cur = null; this.pos = 0; this.played = 0; this.paused = false;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'audio') this.queue.push(new Int16Array(m.pcm));
      else if (m.type === 'mark') this.queue.push({ mark: m.name });
      else if (m.type === 'pause') this.paused = true;
      else if (m.type === 'resume') this.paused = false;
      else if (m.type === 'clear') {
        this.paused = false;
        for (const item of this.queue) if (item.mark !== undefined) this.report(item.mark, 'cleared');
        this.queue = []; this.cur = null; this.pos = 0;
      }
    };
  }
  report(name, event) { this.port.postMessage({ type: 'mark', name, event, playedMs: this.played / 16 }); }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (!this.paused && i < out.length) {
      if (!this.cur) {
        const next = this.queue.shift();
        if (next === undefined) break;
        if (next.mark !== undefined) { this.report(next.mark, 'played'); continue; }
        this.cur = next; this.pos = 0;
      }
      const n = Math.min(out.length - i, this.cur.length - this.pos);
      for (let k = 0; k < n; k++) out[i + k] = this.cur[this.pos + k] / 0x8000;
      i += n; this.pos += n; this.played += n;
      if (this.pos >= this.cur.length) this.cur = null;
    }
    for (; i < out.length; i++) out[i] = 0; // underrun or idle: silence
    return true;
  }
}

registerProcessor('capture-l16', CaptureL16);
registerProcessor('playout-l16', PlayoutL16);
