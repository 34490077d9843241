"""Per-call stream tokens: single use, short-lived, bound to one call, every refusal named."""

from __future__ import annotations

import pytest

from storeagent.agent.transport.tokens import StreamTokens, TokenError

UUID = "5f1c2d3e-0000-4000-8000-00000000abcd"
OTHER = "5f1c2d3e-0000-4000-8000-00000000ffff"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> StreamTokens:
    return StreamTokens(ttl=30.0, clock=clock)


def reason(tokens: StreamTokens, uuid: str, token: str | None) -> str | None:
    return tokens.check(uuid, token)


def test_fresh_token_is_accepted_once(tokens: StreamTokens) -> None:
    token = tokens.mint(UUID)
    assert " " not in token and token.isascii()
    tokens.verify(UUID, token)
    with pytest.raises(TokenError) as e:
        tokens.verify(UUID, token)
    assert e.value.reason == "reused"


def test_each_mint_is_distinct(tokens: StreamTokens) -> None:
    a, b = tokens.mint(UUID), tokens.mint(UUID)
    assert a != b
    assert reason(tokens, UUID, a) is None
    assert reason(tokens, UUID, b) is None


def test_expiry(tokens: StreamTokens, clock: Clock) -> None:
    token = tokens.mint(UUID)
    clock.now += 29.9
    assert reason(tokens, UUID, tokens.mint(UUID)) is None
    clock.now += 0.2
    assert reason(tokens, UUID, token) == "expired"


@pytest.mark.parametrize("token", [None, ""])
def test_missing(tokens: StreamTokens, token: str | None) -> None:
    assert reason(tokens, UUID, token) == "missing"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "sa1.a.b.c",
        "sa2.x.1.n.s",
        "sa1.bad uuid.1.abc." + "A" * 43,
        "sa1.u.notdigits.abc." + "A" * 43,
        "é" * 10,
    ],
)
def test_malformed(tokens: StreamTokens, token: str) -> None:
    assert reason(tokens, UUID, token) == "malformed"


def test_too_long_is_malformed(tokens: StreamTokens) -> None:
    assert reason(tokens, UUID, "sa1." + "a" * 1000) == "malformed"


def test_tampered_fields_break_the_signature(tokens: StreamTokens) -> None:
    token = tokens.mint(UUID)
    version, uuid, expiry, nonce, sig = token.split(".")
    later = ".".join([version, uuid, str(int(expiry) + 3_600_000), nonce, sig])
    assert reason(tokens, UUID, later) == "bad_signature"
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert reason(tokens, UUID, ".".join([version, uuid, expiry, nonce, flipped])) == "bad_signature"


def test_token_of_another_process_key_is_refused(clock: Clock) -> None:
    other = StreamTokens(ttl=30.0, clock=clock)
    assert reason(StreamTokens(ttl=30.0, clock=clock), UUID, other.mint(UUID)) == "bad_signature"


def test_shared_key_from_settings(clock: Clock) -> None:
    key = b"k" * 32
    assert reason(StreamTokens(key, clock=clock), UUID, StreamTokens(key, clock=clock).mint(UUID)) is None


def test_wrong_call(tokens: StreamTokens) -> None:
    token = tokens.mint(OTHER)
    assert reason(tokens, UUID, token) == "wrong_call"
    assert reason(tokens, OTHER, token) is None  # refusing it for the wrong call did not spend it


def test_used_set_forgets_expired_tokens(tokens: StreamTokens, clock: Clock) -> None:
    for _ in range(100):
        tokens.verify(UUID, tokens.mint(UUID))
    clock.now += 31
    tokens.verify(UUID, tokens.mint(UUID))
    assert len(tokens._used) == 1


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="key"):
        StreamTokens(b"short")
    with pytest.raises(ValueError, match="ttl"):
        StreamTokens(ttl=0)
    with pytest.raises(ValueError, match="uuid"):
        StreamTokens().mint("has space")
