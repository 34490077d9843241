"""Wire-level measurements of calls on a real, already running FreeSWITCH (manual: nothing here builds or starts
FreeSWITCH; see README.md in this folder).

  wire.py render EXAMPLE.yaml OUT_DIR AGENT_ESL_PORT   the shop's dialplan file + shop.yaml, by the operator's code
  wire.py uac OUT.xml WAIT_MS AUDIO.ulaw PAUSE_MS      a sipp UAC scenario: INVITE (PCMU), ACK, wait, stream raw
                                                       mu-law (sipp 3.6's rtp_stream sends a WAV header as audio),
                                                       pause, BYE
  wire.py rtp PCAP                                     FreeSWITCH->caller streams: SSRCs, interval mean/p50/p99/max
  wire.py barge PCAP [--ws-port P]                     barge-in stop time on the wire, split at the agent's first
                                                       pause/clear; each onset classed: cleared, or resumed
  wire.py uplink PCAP [--ws-port P]                    one call: caller RTP packet -> the same audio on the websocket
  wire.py hangups PCAP                                 streams that ended while the agent was speaking
FreeSWITCH's RTP ports are taken as 20000-20999 (--fs-ports LO-HI to change).
"""

from __future__ import annotations

import argparse
import math
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

LOUD = 300  # RMS of 16-bit samples: speech, not line noise or filler
Packet = tuple[float, int, int, str, bytes]  # time, src port, dst port, ssrc, payload


def _ulaw_table() -> list[int]:
    out = []
    for b in range(256):
        u = ~b & 0xFF
        t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
        out.append(0x84 - t if u & 0x80 else t - 0x84)
    return out


ULAW = _ulaw_table()


def ulaw_to_pcm(payload: bytes) -> bytes:
    return struct.pack(f"<{len(payload)}h", *(ULAW[b] for b in payload))


def rms_ulaw(payload: bytes) -> float:
    return math.sqrt(sum(ULAW[b] ** 2 for b in payload) / len(payload)) if payload else 0.0


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def tshark(pcap: str, display: str, *fields: str, heuristic_rtp: bool = False) -> list[list[str]]:
    cmd = ["tshark", "-r", pcap, "-Y", display, "-T", "fields"]
    if heuristic_rtp:
        cmd[1:1] = ["-o", "rtp.heuristic_rtp:TRUE"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def rtp_packets(pcap: str) -> list[Packet]:
    rows = tshark(pcap, "rtp", "frame.time_epoch", "udp.srcport", "udp.dstport", "rtp.ssrc", "rtp.payload",
                  heuristic_rtp=True)
    return [(float(r[0]), int(r[1]), int(r[2]), r[3], bytes.fromhex(r[4].replace(":", ""))) for r in rows
            if len(r) == 5 and r[4]]


def streams(pcap: str, fs: range) -> tuple[dict[tuple[int, int], list[Packet]], dict[tuple[int, int], list[Packet]]]:
    """(FreeSWITCH port, caller port) -> packets towards the caller, and the caller's packets towards FreeSWITCH."""
    down: dict[tuple[int, int], list[Packet]] = defaultdict(list)
    up: dict[tuple[int, int], list[Packet]] = defaultdict(list)
    for p in rtp_packets(pcap):
        if p[1] in fs:
            down[(p[1], p[2])].append(p)
        elif p[2] in fs:
            up[(p[2], p[1])].append(p)
    return down, up


def cmd_rtp(a: argparse.Namespace) -> None:
    down, _ = streams(a.pcap, a.fs)
    iv = [(s[i][0] - s[i - 1][0]) * 1000 for s in down.values() for i in range(1, len(s))]
    ssrcs = sum(len({p[3] for p in s}) for s in down.values())
    print(f"streams to caller {len(down)}, SSRCs {ssrcs}, packets {sum(map(len, down.values()))}; interval ms mean "
          f"{sum(iv) / len(iv):.2f} p50 {pct(iv, 50):.2f} p99 {pct(iv, 99):.2f} max {max(iv):.2f}; "
          f"gaps > 40 ms: {sum(1 for x in iv if x > 40)}")


def controls(pcap: str, ws_port: int, kind: str) -> tuple[dict[int, list[float]], dict[int, float]]:
    """The agent's {"type":<kind>} frames (clear, pause, resume; server frames are not masked) per websocket
    connection (the module's client port), and each connection's SYN time (to pair it with the call whose RTP
    starts then)."""
    per: dict[int, list[float]] = defaultdict(list)
    for t, port in tshark(pcap, f'tcp.srcport=={ws_port} && frame contains "\\"{kind}\\""', "frame.time_epoch",
                          "tcp.dstport"):
        per[int(port)].append(float(t))
    syn = {int(port): float(t) for t, port in tshark(
        pcap, f"tcp.dstport=={ws_port} && tcp.flags.syn==1 && tcp.flags.ack==0", "frame.time_epoch", "tcp.srcport")}
    return per, syn


def cmd_barge(a: argparse.Namespace) -> None:
    """Onset: caller energy after >= 300 ms of caller quiet, while the agent speaks (>= 2 loud packets towards the
    caller in [onset - 60 ms, onset + 20 ms]). Stop: the end of the last loud agent packet before the first run of
    >= 200 ms without one that begins after the onset. Not stopped within 1.5 s is reported, never dropped."""
    down, up = streams(a.pcap, a.fs)
    per_conn, syn = controls(a.pcap, a.ws_port, "clear")
    pauses, _ = controls(a.pcap, a.ws_port, "pause")
    resumes, _ = controls(a.pcap, a.ws_port, "resume")
    cleared: list[float] = []  # stop ms of onsets the agent cleared (real interruptions)
    resumed: list[float] = []  # gap ms (onset -> agent loud again) of onsets it resumed (judged false)
    stops: list[float] = []
    up_part: list[float] = []
    down_part: list[float] = []
    missed = held = 0
    for k, dn in sorted(down.items()):
        start = dn[0][0]
        conn = min(syn, key=lambda c: abs(syn[c] - start)) if syn else None
        ours = conn is not None and abs(syn[conn] - start) < 1.0
        mine = per_conn.get(conn, []) if ours else []
        mine_p = pauses.get(conn, []) if ours else []
        mine_r = resumes.get(conn, []) if ours else []
        loud = [p[0] for p in dn if rms_ulaw(p[4]) >= LOUD]
        last = -1e9
        for t, *_rest, pl in up.get(k, []):
            if rms_ulaw(pl) < LOUD:
                continue
            onset, last = t - last >= 0.3, t
            if not onset or sum(1 for x in loud if t - 0.06 <= x <= t + 0.02) < 2:
                continue
            after = [x for x in loud if x >= t - 0.02]
            tag = f"fs port {k[0]} onset +{t - start:.2f} s"
            if not after or after[0] - t >= 0.2:  # silent from before the onset on: a gap between its clauses
                held += 1
                ctl0 = sorted(c for c in [*mine, *mine_p] if t <= c <= t + 0.5)
                print(f"{tag}: agent between clauses at the onset (not counted); its next words held: "
                      + (f"pause/clear +{(ctl0[0] - t) * 1000:.0f} ms" if ctl0 else "NO pause/clear within 0.5 s"))
                continue
            stop = next((x + 0.02 for x, y in zip(after, [*after[1:], math.inf], strict=True) if y - x >= 0.2), None)
            if stop is None or stop - t > 1.5:
                missed += 1
                print(f"{tag}: agent did NOT stop within 1.5 s")
                continue
            stops.append((stop - t) * 1000)
            ctl = sorted(c for c in [*mine, *mine_p] if t <= c <= t + 0.5)  # what stopped it: pause or clear
            split = ""
            if ctl:
                up_part.append((ctl[0] - t) * 1000)
                down_part.append((stop - ctl[0]) * 1000)
                word = "pause" if ctl[0] in mine_p else "clear"
                split = (f" (onset -> {word} on the websocket {up_part[-1]:.0f} ms, {word} -> silent "
                         f"{down_part[-1]:.0f})")
            clr = next((c for c in mine if t <= c <= t + 3.0), None)
            res = next((r for r in mine_r if t <= r <= t + 3.0), None)
            if res is not None and (clr is None or res < clr):
                again = next((x for x in loud if x > res), None)
                resumed.append(((again if again is not None else res) - t) * 1000)
                split += f"; RESUMED {resumed[-1]:.0f} ms after the onset" + (" (then cleared)" if clr else "")
            elif clr is not None:
                cleared.append(stops[-1])
                split += "; cleared"
            print(f"{tag}: agent silent after {stops[-1]:.0f} ms{split}")
    if stops:
        print(f"barge-ins {len(stops)} (+{missed} not stopped within 1.5 s; {held} onsets in a gap between the agent's "
              f"clauses not counted): stop ms p50 {pct(stops, 50):.0f} p95 {pct(stops, 95):.0f} max {max(stops):.0f}")
    if up_part:
        print(f"  onset -> first pause/clear p50 {pct(up_part, 50):.0f} p95 {pct(up_part, 95):.0f}; -> silent p50 "
              f"{pct(down_part, 50):.0f} p95 {pct(down_part, 95):.0f} (ms, n={len(up_part)})")
    if cleared:
        print(f"  cleared (real interruptions) {len(cleared)}: stop ms p50 {pct(cleared, 50):.0f} "
              f"p95 {pct(cleared, 95):.0f} max {max(cleared):.0f}")
    if resumed:
        print(f"  resumed (judged not an interruption) {len(resumed)}: onset -> agent audible again ms p50 "
              f"{pct(resumed, 50):.0f} p95 {pct(resumed, 95):.0f} max {max(resumed):.0f}")


def ws_frames(data: bytes) -> list[bytes]:
    """Unmasked payloads of the client websocket frames in one TCP segment."""
    out, i = [], 0
    while i + 6 <= len(data):
        n, j = data[i + 1] & 0x7F, i + 2
        if n == 126:
            n, j = int.from_bytes(data[j:j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(data[j:j + 8], "big"), j + 8
        mask, j = data[j:j + 4], j + 4
        out.append(bytes(x ^ mask[m % 4] for m, x in enumerate(data[j:j + n])))
        i = j + n
    return out


def cmd_uplink(a: argparse.Namespace) -> None:
    """One call (the same audio in two calls would be ambiguous): each voiced caller packet, decoded, is found by
    content in the L16 frames the module sends (FreeSWITCH decodes G.711 with the same table)."""
    sent: dict[bytes, float] = {}
    for t, _sp, dp, _ssrc, pl in rtp_packets(a.pcap):
        if dp in a.fs and rms_ulaw(pl) >= 100:
            sent.setdefault(ulaw_to_pcm(pl), t)
    lags = []
    for t, payload in tshark(a.pcap, f"tcp.dstport=={a.ws_port} && tcp.len >= 320", "frame.time_epoch",
                             "tcp.payload"):
        for frame in ws_frames(bytes.fromhex(payload.replace(":", ""))):
            if frame in sent:
                lags.append((float(t) - sent.pop(frame)) * 1000)
    print(f"voiced caller packets found on the websocket {len(lags)}: RTP in -> same audio out ms p50 "
          f"{pct(lags, 50):.1f} p95 {pct(lags, 95):.1f} max {max(lags):.1f}")


def cmd_hangups(a: argparse.Namespace) -> None:
    down, _ = streams(a.pcap, a.fs)
    mid = sum(1 for s in down.values() if any(p[0] >= s[-1][0] - 0.3 and rms_ulaw(p[4]) >= LOUD for p in s))
    print(f"{mid}/{len(down)} streams towards the caller ended while the agent was speaking (loud in the last 300 ms)")


def cmd_render(a: argparse.Namespace) -> None:
    import yaml

    from storeagent.operator import dialplan, model, resources

    obj = yaml.safe_load(Path(a.example).read_text())
    spec = model.parse_spec(obj["spec"])
    shop = resources.Shop(name=obj["metadata"]["name"], namespace="shops", uid="local", spec=spec)
    xml = dialplan.render(namespace=shop.namespace, name=shop.name, numbers=spec.phone_numbers,
                          service_host="127.0.0.1", esl_port=a.esl_port, fallback=spec.fallback,
                          bridge_template="sofia/gateway/carrier/{number}",
                          apology=dialplan.apology_file(spec.language), generation=1)
    out = Path(a.out_dir)
    (out / f"{shop.namespace}--{shop.name}.xml").write_text(xml)
    (out / "shop.yaml").write_text(resources.shop_yaml(shop))


UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="storeagent caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+15557770000@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+15557770000@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <pause milliseconds="{wait}"/>
  <nop><action><exec rtp_stream="{audio},1,0"/></action></nop>
  <pause milliseconds="{pause}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+15557770000@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def cmd_uac(a: argparse.Namespace) -> None:
    Path(a.out).write_text(UAC.format(wait=a.wait_ms, audio=Path(a.audio).resolve(), pause=a.pause_ms))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fs-ports", default="20000-20999")
    ap.add_argument("--ws-port", type=int, default=18080)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("rtp", "barge", "uplink", "hangups"):
        sub.add_parser(name).add_argument("pcap")
    r = sub.add_parser("render")
    r.add_argument("example")
    r.add_argument("out_dir")
    r.add_argument("esl_port", type=int)
    u = sub.add_parser("uac")
    u.add_argument("out")
    u.add_argument("wait_ms", type=int)
    u.add_argument("audio")
    u.add_argument("pause_ms", type=int)
    a = ap.parse_args(argv)
    lo, hi = (int(x) for x in a.fs_ports.split("-"))
    a.fs = range(lo, hi + 1)
    {"rtp": cmd_rtp, "barge": cmd_barge, "uplink": cmd_uplink, "hangups": cmd_hangups, "render": cmd_render,
     "uac": cmd_uac}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
