"""Dialplan rendering (FreeSWITCH 1.10 XML) and number ownership, pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from storeagent.operator import dialplan
from storeagent.operator.model import Fallback


def render(fallback: Fallback, numbers: tuple[str, ...] = ("+15551230001", "+15551230002")) -> str:
    return dialplan.render(namespace="shops", name="bakery", numbers=numbers,
                           service_host="bakery.shops.svc.cluster.local", esl_port=8084, fallback=fallback,
                           bridge_template="sofia/gateway/carrier/{number}", apology="sorry.wav", generation=3)


def actions(xml: str) -> list[tuple[str, str]]:
    root = ET.fromstring(xml)
    return [(a.get("application", ""), a.get("data", "")) for a in root.iter("action")]


def test_socket_then_forward_fallback() -> None:
    xml = render(Fallback(forward_to="+15559990000"))
    acts = actions(xml)
    assert acts[:3] == [("set", "storeagent_store=bakery"), ("set", "storeagent_namespace=shops"),
                        ("socket", "bakery.shops.svc.cluster.local:8084 async full")]
    # The fallback starts right after the socket: FreeSWITCH runs it when the agent is unreachable or dies.
    assert acts[3:] == [("set", "hangup_after_bridge=true"), ("bridge", "sofia/gateway/carrier/+15559990000"),
                        ("answer", ""), ("playback", "sorry.wav"), ("hangup", "NORMAL_TEMPORARY_FAILURE")]
    assert "send_silence_when_idle" not in xml
    cond = ET.fromstring(xml).find("./extension/condition")
    assert cond is not None and cond.get("field") == "destination_number"
    assert cond.get("expression") == r"^\+?(15551230001|15551230002)$"


def test_playback_fallback() -> None:
    acts = actions(render(Fallback(playback="ivr/closed.wav")))
    assert [a for a, _ in acts[3:]] == ["answer", "playback", "hangup"]
    assert acts[4] == ("playback", "ivr/closed.wav")


def test_no_numbers_left_is_an_empty_include() -> None:
    root = ET.fromstring(render(Fallback(playback="x.wav"), numbers=()))
    assert root.tag == "include" and root.find("extension") is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_any_playback_text_stays_inside_its_attribute(text: str) -> None:
    # The CRD pattern already refuses such input; the renderer must still never emit broken XML.
    acts = actions(render(Fallback.model_construct(forward_to=None, playback=text)))
    assert ("playback", text) in acts
    assert [a for a, _ in acts].count("socket") == 1


def test_first_claimant_keeps_the_number() -> None:
    a = dialplan.Claim("ns1", "a", "2026-01-01T00:00:00Z", ("+1555", "+1666"))
    b = dialplan.Claim("ns2", "b", "2026-02-01T00:00:00Z", ("+1555", "+1777"))
    own = dialplan.ownership([b, a])
    assert own.owner["+1555"] == "ns1/a"
    assert own.lost_by("ns2/b", b.numbers) == ["+1555"]
    assert own.lost_by("ns1/a", a.numbers) == []
    assert own.rivals("ns1/a", a.numbers) == {"+1555": ["ns2/b"]}
    assert own.rivals("ns2/b", b.numbers) == {"+1555": ["ns1/a"]}
    assert dialplan.ownership([b]).lost_by("ns2/b", b.numbers) == []


def test_shards_are_stable_and_bounded() -> None:
    assert dialplan.shard_of("shops", "bakery") == dialplan.shard_of("shops", "bakery")
    assert {dialplan.shard_of("ns", f"s{i}") for i in range(500)} == set(range(dialplan.SHARDS))
    assert dialplan.configmap_name(3) == "storeagent-dialplan-03"
