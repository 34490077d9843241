"""The operator's spec model: the example parses, defaults are safe, bad input names the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from storeagent.operator import model
from storeagent.shop import shop_config_from_manifest

# A made-up key shape (built here so no key-like literal sits in the repo): admission must refuse it.
FAKE_KEY = "sk-" + "abcdefghijklmnop123456"

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


def example_spec() -> dict[str, object]:
    spec: dict[str, object] = yaml.safe_load(EXAMPLE.read_text())["spec"]
    return spec


def test_example_parses_and_agrees_with_the_agent_view() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    spec = model.parse_spec(doc["spec"])
    assert spec.fallback.forward_to == "+15551239999"
    assert spec.scaling.replicas == 2 and spec.scaling.max_calls_per_pod == 50
    # The ConfigMap's ShopConfig equals what the agent itself reads from the same manifest.
    assert spec.shop_config("sunrise-bakery") == shop_config_from_manifest(doc)


def test_defaults_always_have_a_fallback() -> None:
    spec = model.parse_spec({"phoneNumbers": ["+15550000001"], "profile": {"name": "X"}})
    # No playback: the dialplan plays the apology the FreeSWITCH image ships, in the shop's language.
    assert spec.fallback.playback is None and spec.fallback.forward_to is None
    assert spec.scaling.replicas == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"phoneNumbers": ["12345"]}, "phoneNumbers.0"),
    ({"phoneNumbers": ["+15551230001", "+15551230001"]}, "listed twice"),
    ({"scaling": {"replicas": -1}}, "scaling.replicas"),
    ({"fallback": {"playback": "a b"}}, "fallback.playback"),
    ({"profile": {"name": "X", "timezone": "Mars/Olympus"}}, "timezone"),
    ({"image": {"repository": "evil.example/miner"}}, "image"),  # the platform picks the image
])
def test_invalid_spec_names_the_field(change: dict[str, object], field: str) -> None:
    spec = {**example_spec(), **change}
    with pytest.raises(ValidationError) as e:
        model.parse_spec(spec)
    text = str(e.value).replace("\n", " ")
    assert field in text, text


def test_store_names() -> None:
    assert model.valid_store_name("sunrise-bakery")
    assert not model.valid_store_name("9lives")
    assert not model.valid_store_name("x" * 53)


def _with(**changes: object) -> dict[str, object]:
    return {**example_spec(), **changes}


def _profile(**changes: object) -> dict[str, object]:
    profile = dict(example_spec()["profile"])  # type: ignore[call-overload]
    profile.update(changes)
    return profile


def test_dotted_secret_names_are_accepted() -> None:
    spec = model.parse_spec(_with(secretRef={"name": "sunrise.provider-keys"}))
    assert spec.secret_ref is not None and spec.secret_ref.name == "sunrise.provider-keys"
    for bad in ("Keys", "-keys", "keys.", "a..b", "keys\n"):
        with pytest.raises(ValidationError, match=r"secretRef\.name"):
            model.parse_spec(_with(secretRef={"name": bad}))


def test_unquoted_prices_are_normalised_to_exact_decimals() -> None:
    menu = [{"name": "roll", "price": 4.5}, {"name": "tart", "price": 4.1}, {"name": "pie", "price": 12}]
    spec = model.parse_spec(_with(profile=_profile(menu=menu)))
    dumped = spec.shop_config("x").model_dump(by_alias=True, mode="json")
    assert [m["price"] for m in dumped["profile"]["menu"]] == ["4.5", "4.1", "12"]
    for bad in (-1, "1e3", "4.55555", "NaN", 10**9):
        with pytest.raises(ValidationError, match="price"):
            model.parse_spec(_with(profile=_profile(menu=[{"name": "roll", "price": bad}])))


def test_a_13_megabyte_faq_is_refused_before_it_reaches_a_configmap() -> None:
    huge = [{"question": f"q{i}?", "answer": "a" * 3900} for i in range(FAQ_ENTRIES)]
    with pytest.raises(ValidationError, match="budget"):
        model.parse_spec(_with(profile=_profile(faq=huge)))
    with pytest.raises(ValidationError, match="faq"):
        model.parse_spec(_with(profile=_profile(faq=[{"question": "q", "answer": "a"}] * 201)))  # maxItems
    with pytest.raises(ValidationError, match="answer"):
        model.parse_spec(_with(profile=_profile(faq=[{"question": "q", "answer": "a" * 1_300_000}])))


FAQ_ENTRIES = 17  # 17 x 3,900 characters: over the 65,536 budget with every single field within its limit


def test_worst_case_within_every_limit_still_fits_a_configmap() -> None:
    from storeagent.operator import resources
    from storeagent.shop import PROFILE_TEXT_BUDGET
    astral = "\U0001f950"  # 4 bytes in UTF-8, the worst case per character
    n = PROFILE_TEXT_BUDGET // 4000
    faq = [{"question": astral * 99, "answer": astral * 3900} for _ in range(n)]
    spec = model.parse_spec(_with(profile=_profile(faq=faq, address="", directions="", menu=[])))
    cm = resources.desired_configmap(resources.Shop("x", "ns", "uid", spec))
    assert len(cm["data"]["shop.yaml"].encode()) < 1024 * 1024 - 4096


@pytest.mark.parametrize("text", ["bell\x07", "esc\x1b[2J", "nul\x00", "del\x7f"])
def test_control_characters_in_free_text_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="greeting"):
        model.parse_spec(_with(profile=_profile(greeting=text)))
    model.parse_spec(_with(profile=_profile(greeting="Bonjour,\n\tcaf\u00e9 \u2615 \u4f60\u597d")))


@pytest.mark.parametrize(("field", "value"), [
    ("model", "sk-proj-abcdefghijklmnop1234567890"),
    ("model", "sk_0123456789abcdef0123456789abcdef0123456789abcdef"),  # ElevenLabs-shaped
    ("model", "0123456789abcdef0123456789abcdef01234567"),  # Deepgram-shaped (40 hex)
    ("voice", "xi-abcdefghijklmnopqrstuvwxyz"),
    ("baseUrl", "https://api.example.com/v1/" + FAKE_KEY + "7890"),
    ("baseUrl", "https://user:sk-secret@api.example.com/v1"),
    ("baseUrl", "https://api.example.com/v1?api_key=abc"),
    ("baseUrl", "https://api.example.com/v1#frag"),
    ("baseUrl", "javascript:alert(1)"),
    ("baseUrl", "https://api.example.com\n/v1"),
])
def test_key_shaped_or_credentialed_provider_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field.replace("baseUrl", "base")):
        model.parse_spec(_with(providers={"llm": {"name": "openai", field: value}}))


def test_plain_provider_values_pass() -> None:
    spec = model.parse_spec(_with(providers={"llm": {"name": "openai", "model": "accounts/x/models/llama-v3p1-8b",
                                                     "baseUrl": "https://llm.example.com:8443/v1"}}))
    assert spec.providers.llm.base_url == "https://llm.example.com:8443/v1"


@pytest.mark.parametrize("url", ["https://user:pass@hooks.example.com/x", "https://hooks.example.com/x#f",
                                 "https://hooks.example.com/a b", "ftp://hooks.example.com/", "https://[::1]/x"])
def test_webhook_urls_without_credentials_or_odd_shapes(url: str) -> None:
    with pytest.raises(ValidationError, match=r"webhook\.url"):
        model.parse_spec(_with(webhook={"url": url}))


@pytest.mark.parametrize("number", ["+15551230001\n", "+\uff11\uff15\uff15\uff15\uff11\uff12\uff13\uff14",
                                    "+1555|.*", "+1555${x}", "+0123456789", "15551230001"])
def test_hostile_numbers_are_refused_by_the_model_too(number: str) -> None:
    with pytest.raises(ValidationError, match=r"E\.164"):
        model.parse_spec(_with(phoneNumbers=[number]))
    with pytest.raises(ValidationError, match=r"E\.164"):
        model.parse_spec(_with(transfer={"staffNumbers": [number]}))
