"""Dialplan rendering (FreeSWITCH 1.10 XML) and number ownership, pure."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

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
    # continue_on_fail before the bridge: an unreachable owner falls through to the apology (FreeSWITCH hangs
    # the caller up on a failed bridge otherwise); hangup_after_bridge ends an answered forward there.
    assert acts[3:] == [("set", "continue_on_fail=true"), ("set", "hangup_after_bridge=true"),
                        ("set", "call_timeout=30"), ("set", "transfer_ringback=%(2000,4000,440,480)"),
                        ("bridge", "sofia/gateway/carrier/+15559990000"),
                        ("answer", ""), ("playback", "sorry.wav"), ("hangup", "NORMAL_TEMPORARY_FAILURE")]
    assert "send_silence_when_idle" not in xml
    cond = ET.fromstring(xml).find("./extension/condition")
    assert cond is not None and cond.get("field") == "destination_number"
    assert cond.get("expression") == r"^\+?(15551230001|15551230002)$"


def test_the_channel_keeps_freeswitchs_rtp_timer() -> None:
    """No `rtp_timer_name=none`, no `timer_name`: without an RTP timer a silent caller's channel never runs its
    fallback when the agent dies (measured on FreeSWITCH 1.10.12, see the module docstring)."""
    for fb in (Fallback(forward_to="+15559990000"), Fallback(), Fallback(playback="ivr/closed.wav")):
        xml = render(fb)
        assert "timer_name" not in xml and "rtp_timer" not in xml


def test_default_apology_is_the_shipped_file_in_the_shops_language() -> None:
    assert dialplan.apology_file("ko-KR") == "storeagent/apology-ko.wav"
    assert dialplan.apology_file("ko") == "storeagent/apology-ko.wav"
    assert dialplan.apology_file("en-US") == "storeagent/apology-en.wav"
    assert dialplan.apology_file("fr-FR") == "storeagent/apology-en.wav"  # no French apology shipped: English
    xml = dialplan.render(namespace="shops", name="gogi", numbers=("+82212345678",), service_host="gogi.shops.svc",
                          esl_port=8084, fallback=Fallback(), bridge_template="sofia/gateway/carrier/{number}",
                          apology=dialplan.apology_file("ko-KR"), generation=1)
    assert [a for a in actions(xml) if a[0] == "playback"] == [("playback", "storeagent/apology-ko.wav")]


def test_playback_fallback() -> None:
    acts = actions(render(Fallback(playback="ivr/closed.wav")))
    assert [a for a, _ in acts[3:]] == ["answer", "playback", "hangup"]
    assert acts[4] == ("playback", "ivr/closed.wav")


def test_no_numbers_left_is_an_empty_include() -> None:
    root = ET.fromstring(render(Fallback(playback="x.wav"), numbers=()))
    assert root.tag == "include" and root.find("extension") is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40))
def test_any_playback_text_is_refused_or_rendered_as_a_plain_path(text: str) -> None:
    # The CRD pattern already refuses such input; the renderer refuses it again, or renders it verbatim.
    try:
        xml = render(Fallback.model_construct(forward_to=None, playback=text))
    except dialplan.RenderError as e:
        assert e.field == "fallback.playback"
        return
    acts = actions(xml)
    assert ("playback", text) in acts
    assert [a for a, _ in acts].count("socket") == 1
    assert not set(text) & set("${}()|,:;!%'\"<>& \t\n") and text.endswith(".wav")


HOSTILE_PLAYBACK = [
    "${system(touch /tmp/pwned)}.wav", "${hupall(NORMAL_CLEARING)}", "${fsctl(shutdown)}", "$${sounds_dir}/x.wav",
    "${api(system id)}", "x.wav\"/><action application=\"system\" data=\"id", "x.wav\n", "x.wav\r\nx.wav",
    "/etc/passwd.wav", "../../other-shop/recording.wav", "ivr/../../x.wav", ".hidden.wav", "a//b.wav",
    "tone_stream://%(200,0,440)", "http://169.254.169.254/latest.wav", "say:en number pronounced 5",
    "a.wav!b.wav", "a|b.wav", "a,b.wav", "caf\u00e9.wav", "\uff04{system(id)}.wav", "x\u2028.wav", "a b.wav",
    "x-pre-process.wav", "X-PRE-PROCESS.wav", "x.mp3", "x.WAV.sh", "a/" * 9 + "x.wav", "x" * 300 + ".wav", "",
]


@pytest.mark.parametrize("value", HOSTILE_PLAYBACK)
def test_hostile_playback_is_refused_by_model_and_renderer(value: str) -> None:
    with pytest.raises(ValidationError):
        Fallback(playback=value)
    with pytest.raises(dialplan.RenderError, match=r"fallback\.playback"):
        render(Fallback.model_construct(forward_to=None, playback=value))


@pytest.mark.parametrize("value", ["ivr/ivr-please_try_again_later.wav", "x.wav", "shops/sunrise/closed.v2.wav"])
def test_plain_sound_paths_are_accepted(value: str) -> None:
    assert ("playback", value) in actions(render(Fallback(playback=value)))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": "x-pre-process"}, "metadata.name"),
    ({"name": "bakery\n"}, "metadata.name"),
    ({"name": "${hupall(x)}"}, "metadata.name"),
    ({"namespace": "Shops"}, "metadata.namespace"),
    ({"namespace": "shops-X-Pre-Process"}, "metadata.namespace"),
    ({"numbers": ("+15551230001", "+1555${x}")}, "phoneNumbers[1]"),
    ({"numbers": ("+15551230001\n",)}, "phoneNumbers[0]"),
    ({"service_host": "evil.com:1/${x}"}, "serviceHost"),
    ({"fallback": Fallback.model_construct(forward_to="+1555|${system(id)}", playback=None)}, "fallback.forwardTo"),
    ({"apology": "${system(id)}"}, "apology"),
    ({"esl_port": 0}, "eslPort"),
])
def test_every_rendered_value_is_checked(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "namespace": "shops", "name": "bakery", "numbers": ("+15551230001",),
        "service_host": "bakery.shops.svc.cluster.local", "esl_port": 8084, "fallback": Fallback(playback="x.wav"),
        "bridge_template": "sofia/gateway/carrier/{number}", "apology": "sorry.wav", "generation": 1, **kwargs}
    with pytest.raises(dialplan.RenderError) as e:
        dialplan.render(**args)
    assert e.value.field == field


def test_dashes_in_names_keep_the_file_well_formed() -> None:
    # "a--b" is a legal DNS label; "--" inside an XML comment is not well-formed.
    xml = dialplan.render(namespace="team--a", name="b--c", numbers=("+15551230001",),
                          service_host="b--c.team--a.svc.cluster.local", esl_port=8084,
                          fallback=Fallback(playback="x.wav"), bridge_template="sofia/gateway/carrier/{number}",
                          apology="sorry.wav", generation=1)
    assert ("set", "storeagent_store=b--c") in actions(xml)


def test_rendered_file_has_no_expansion_or_preprocessor_syntax() -> None:
    xml = render(Fallback(forward_to="+15559990000", playback="ivr/closed.wav"))
    # The only "$" is the condition's regex anchor; no action data carries one.
    assert "${" not in xml and "x-pre-process" not in xml.lower()
    assert all("$" not in data for _, data in actions(xml))


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
    # Stable across processes (the operator restarts, several replicas): no per-process hash() seed in it.
    code = "from storeagent.operator import dialplan; print(dialplan.shard_of('shops', 'bakery'))"
    seen = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2", "3")}
    assert seen == {str(dialplan.shard_of("shops", "bakery"))}
    assert {dialplan.shard_of("ns", f"s{i}") for i in range(500)} == set(range(dialplan.SHARDS))
    assert dialplan.configmap_name(3) == "storeagent-dialplan-03"


def test_check_spec_refuses_before_anything_is_written() -> None:
    from storeagent.operator import model
    ok = model.parse_spec({"phoneNumbers": ["+15550000001"], "profile": {"name": "X"}})
    dialplan.check_spec("shops", "bakery", ok)
    hostile = Fallback.model_construct(forward_to=None, playback="${fsctl(shutdown)}")
    stored = ok.model_copy(update={"fallback": hostile})
    with pytest.raises(dialplan.RenderError, match=r"fallback\.playback"):
        dialplan.check_spec("shops", "bakery", stored)
    with pytest.raises(dialplan.RenderError, match=r"metadata\.namespace"):
        dialplan.check_spec("shops-x-pre-process", "bakery", ok)


def test_the_preprocessor_word_from_the_platform_side_is_refused_too() -> None:
    with pytest.raises(dialplan.RenderError, match="x-pre-process"):
        dialplan.render(namespace="shops", name="bakery", numbers=("+15551230001",),
                        service_host="bakery.shops.svc.cluster.local", esl_port=8084,
                        fallback=Fallback(forward_to="+15559990000"),
                        bridge_template="sofia/gateway/X-PRE-PROCESS/{number}", apology="sorry.wav", generation=1)
