// "Try it": a browser call to the shop's agent through this site's websocket relay (handlers_try.py).
const root = document.getElementById('try');
if (root) {
  const S = JSON.parse(root.dataset.strings);
  const startBtn = document.getElementById('try-start');
  const stopBtn = document.getElementById('try-stop');
  const stateEl = document.getElementById('try-state');
  const level = document.getElementById('try-level');
  const list = document.getElementById('try-transcript');
  let ctx = null; let ws = null; let stream = null; let started = false;

  const setState = (text, live) => {
    stateEl.textContent = text; root.dataset.state = live;
    startBtn.disabled = live === 'live' || live === 'connecting'; stopBtn.disabled = !(live === 'live' || live === 'connecting');
  };
  const lines = new Map(); // line number -> its text node (agent lines grow as the reply streams)
  const addLine = (n, role, text) => {
    if (lines.has(n)) { lines.get(n).textContent = text; return; }
    const li = document.createElement('li');
    li.className = `turn ${role}`;
    const who = document.createElement('span'); who.className = 'who';
    who.textContent = role === 'agent' ? S.role_agent : S.role_caller;
    const body = document.createElement('span'); body.textContent = text;
    li.append(who, body);
    list.append(li); lines.set(n, body);
  };
  const hangUp = () => {
    if (ws && ws.readyState <= 1) ws.close(1000);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    ws = null; stream = null; ctx = null; started = false;
    setState(S.try_ended, 'ended');
  };

  startBtn.addEventListener('click', async () => {
    setState(S.try_connecting, 'connecting');
    root.dataset.playedMs = '0'; list.replaceChildren(); lines.clear();
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true,
        noiseSuppression: true, autoGainControl: true } });
    } catch (e) { setState(S.try_nomic, 'error'); return; }
    ctx = new AudioContext({ sampleRate: 16000, latencyHint: 'interactive' });
    await ctx.audioWorklet.addModule('/static/worklets.js');
    const mic = ctx.createMediaStreamSource(stream);
    const capture = new AudioWorkletNode(ctx, 'capture-l16', { numberOfOutputs: 0 });
    const playout = new AudioWorkletNode(ctx, 'playout-l16', { numberOfInputs: 0, outputChannelCount: [1] });
    mic.connect(capture); playout.connect(ctx.destination);
    const url = new URL(root.dataset.ws, location.href); url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(url); ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') { playout.port.postMessage({ type: 'audio', pcm: ev.data }, [ev.data]); return; }
      let m; try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'started') { started = true; root.dataset.callId = m.call_id; setState(S.try_live, 'live'); }
      else if (['clear', 'mark', 'pause', 'resume'].includes(m.type)) playout.port.postMessage(m);
      else if (m.type === 'transcript') addLine(m.n, m.role, m.text);
      else if (m.type === 'error') setState(m.detail, 'error');
    };
    ws.onclose = () => { if (ws) hangUp(); };
    playout.port.onmessage = (e) => {
      root.dataset.playedMs = String(Math.round(e.data.playedMs));
      if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'mark', name: e.data.name, event: e.data.event }));
    };
    capture.port.onmessage = (e) => {
      level.style.width = `${Math.min(100, Math.round(e.data.peak * 140))}%`;
      if (started && ws && ws.readyState === 1) ws.send(e.data.pcm);
    };
  });
  stopBtn.addEventListener('click', hangUp);
}
