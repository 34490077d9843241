"""The operator's spec model: the example parses, defaults are safe, bad input names the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from storeagent.operator import model
from storeagent.shop import shop_config_from_manifest

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
