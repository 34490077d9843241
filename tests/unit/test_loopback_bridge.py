"""The loopback's `bridge` reports like FreeSWITCH 1.10.12 (mod_dptools audio_bridge_function,
switch_ivr_originate.c, switch_ivr_bridge.c, switch_channel_handle_cause), and the agent reads the result from
those reports: answered only on CHANNEL_BRIDGE / originate_disposition "call accepted"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storeagent.agent.call import bridge_result
from storeagent.agent.loopback.esl_client import LoopbackEslClient, StaffPhone
from storeagent.agent.ports import ChannelEvent
from storeagent.agent.transport import esl_protocol as esl
from support.esl_peers import RawAgent

SETUP = [esl.connect(), esl.myevents("json"), esl.linger()]


class Agent(RawAgent):
    port = 0


@pytest.fixture
async def agent() -> AsyncIterator[Agent]:
    a = Agent()
    a.port = await a.start()
    yield a
    await a.close()


async def dial(agent: Agent, staff: StaffPhone, *sets: str, target: str = "sofia/gateway/carrier/+15551239999"
               ) -> tuple[LoopbackEslClient, list[ChannelEvent]]:
    """Run `set`s then `bridge`; return the events up to the bridge's CHANNEL_EXECUTE_COMPLETE."""
    fs = LoopbackEslClient("127.0.0.1", agent.port, staff=staff)
    await fs.start()
    for cmd in SETUP:
        assert (await agent.request(cmd)).ok
    for i, assignment in enumerate(("", *sets)):
        app, arg = ("answer", "") if not assignment else ("set", assignment)
        assert (await agent.request(esl.sendmsg_execute(app, arg, event_uuid=f"{i:036d}"))).ok
    assert (await agent.request(esl.sendmsg_execute("bridge", target, event_uuid="b" * 36))).ok
    events: list[ChannelEvent] = []
    while True:
        msg = await agent.recv()
        if not esl.is_event(msg):
            continue
        ev = esl.parse_event(msg)
        events.append(ev)
        if ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.headers.get("Application-UUID") == "b" * 36:
            return fs, events


def names(events: list[ChannelEvent]) -> list[str]:
    """The bridge's own events and the channel's bridge/hangup events, in order."""
    keep = ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP")
    return [e.name for e in events if e.name in keep or e.headers.get("Application") == "bridge"]


async def test_failed_bridge_hangs_the_caller_up_without_continue_on_fail(agent: Agent) -> None:
    fs, events = await dial(agent, StaffPhone(reject="USER_BUSY"))
    assert names(events) == ["CHANNEL_EXECUTE", "CHANNEL_HANGUP", "CHANNEL_EXECUTE_COMPLETE"]
    assert events[-1].headers["Hangup-Cause"] == "USER_BUSY" and fs.hung_up
    await fs.close()


async def test_unknown_gateway_with_continue_on_fail_comes_back_with_invalid_gateway(agent: Agent) -> None:
    fs, events = await dial(agent, StaffPhone(answer_after_s=0), "continue_on_fail=true",
                            target="sofia/gateway/storeagent-trunk/+15551239999")
    done = events[-1].headers
    assert names(events) == ["CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"] and not fs.hung_up
    assert done["variable_originate_disposition"] == "INVALID_GATEWAY" and done["Answer-State"] == "answered"
    assert fs.dialed == []  # nothing rang
    assert bridge_result(events[-1], bridged=False).cause == "INVALID_GATEWAY"
    await fs.close()


async def test_unanswered_rings_for_call_timeout_then_no_answer(agent: Agent) -> None:
    fs, events = await dial(agent, StaffPhone(), "continue_on_fail=true", "call_timeout=1")
    started = float(events[0].headers["Event-Date-Timestamp"]) / 1e6
    ended = float(events[-1].headers["Event-Date-Timestamp"]) / 1e6
    done = events[-1].headers
    assert 0.9 < ended - started < 3
    assert (done["variable_originate_disposition"], done["variable_DIALSTATUS"]) == ("NO_ANSWER", "NOANSWER")
    assert done["variable_originate_failed_cause"] == "NO_ANSWER" and fs.dialed == ["+15551239999"]
    assert done["variable_last_bridge_hangup_cause"] == "NO_ANSWER" and done["Application-Response"] == "_none_"
    result = bridge_result(events[-1], bridged=False)
    assert not result.answered and result.cause == "NO_ANSWER" and not result.caller_gone
    await fs.close()


async def test_answered_bridge_then_staff_hang_up_ends_the_call(agent: Agent) -> None:
    fs, events = await dial(agent, StaffPhone(answer_after_s=0.1, talk_s=0.2), "continue_on_fail=true",
                            "hangup_after_bridge=true")
    assert names(events) == ["CHANNEL_EXECUTE", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP",
                             "CHANNEL_EXECUTE_COMPLETE"]
    bridge = next(e for e in events if e.name == "CHANNEL_BRIDGE")
    assert bridge.headers["Bridge-A-Unique-ID"] == fs.uuid and bridge.headers["Unique-ID"] == fs.uuid
    done = events[-1].headers
    # As recorded on a real 1.10.12 (the CHANNEL_BRIDGE of an answered transfer).
    assert (done["variable_originate_disposition"], done["variable_DIALSTATUS"]) == ("SUCCESS", "SUCCESS")
    assert bridge.headers["Other-Type"] == "originatee" and bridge.headers["Other-Leg-Unique-ID"]
    assert done["Answer-State"] == "hangup" and done["Hangup-Cause"] == "NORMAL_CLEARING"
    assert bridge_result(events[-1], bridged=False).answered and bridge_result(None, bridged=True).answered
    await fs.close()


async def test_caller_hangs_up_while_staff_phone_rings(agent: Agent) -> None:
    fs = LoopbackEslClient("127.0.0.1", agent.port, staff=StaffPhone())
    await fs.start()
    for cmd in SETUP:
        assert (await agent.request(cmd)).ok
    assert (await agent.request(esl.sendmsg_execute("set", "continue_on_fail=true", event_uuid="s" * 36))).ok
    bridge = esl.sendmsg_execute("bridge", "sofia/gateway/carrier/+1555", event_uuid="b" * 36)
    assert (await agent.request(bridge)).ok
    while not fs.dialed:
        await agent.recv()
    await fs.caller_hangup()
    while True:
        msg = await agent.recv()
        ev = esl.parse_event(msg) if esl.is_event(msg) else None
        if ev and ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.headers.get("Application-UUID") == "b" * 36:
            break
    assert ev is not None
    result = bridge_result(ev, bridged=False)
    assert (result.answered, result.cause, result.caller_gone) == (False, "ORIGINATOR_CANCEL", True)
    await fs.close()
