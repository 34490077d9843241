"""Transfers recorded on a real FreeSWITCH 1.10.12 (tests/data/freeswitch-1.10.12-transfer): the parser frames
the whole stream, and the agent's bridge_result reads each staff leg's fate from the events FreeSWITCH really sent."""

from __future__ import annotations

import pytest

from storeagent.agent.call import bridge_result
from storeagent.agent.ports import ChannelEvent
from storeagent.agent.transport import esl_protocol as esl
from support.captures import TRANSFER_CAPTURES, fs_bytes, read_capture

# capture -> (answered, cause) as the recording's README states it
EXPECTED = {
    "esl-outbound-json-bridge-answered-staff-hangs-up.txt": (True, "SUCCESS"),
    "esl-outbound-json-agent-transfer-answered.txt": (True, "SUCCESS"),
    "esl-outbound-json-agent-transfer-no-answer.txt": (False, "NO_ANSWER"),
    "esl-outbound-json-agent-transfer-staff-unreachable.txt": (False, "NORMAL_TEMPORARY_FAILURE"),
}


def events(name: str) -> list[ChannelEvent]:
    parser = esl.EslParser()
    out: list[ChannelEvent] = []
    for record in fs_bytes(read_capture(name, TRANSFER_CAPTURES)):
        # a record is one TCP read of the recording proxy (see its README): several messages, or part of one
        out += [esl.parse_event(m) for m in parser.feed(record) if esl.is_event(m)]
    assert parser.buffered == 0
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bridge_result_from_the_real_events(name: str) -> None:
    evs = events(name)
    bridged = next((e for e in evs if e.name == "CHANNEL_BRIDGE"), None)
    done = next((e for e in evs if e.name == "CHANNEL_EXECUTE_COMPLETE"
                 and e.headers.get("Application") == "bridge"), None)
    # What the agent acts on: CHANNEL_BRIDGE when it comes, else the bridge's completion.
    result = bridge_result(bridged or done, bridged is not None)
    answered, cause = EXPECTED[name]
    assert (result.answered, result.cause) == (answered, cause)
    assert not result.caller_gone
