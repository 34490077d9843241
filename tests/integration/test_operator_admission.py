"""Invalid StoreAgents are refused by the real API server at admission, with a message naming the field and
the reason (OpenAPI schema from the pydantic model, CEL rules where the schema cannot say it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from support.operator_env import install

# A made-up key shape (built here so no key-like literal sits in the repo): admission must refuse it.
FAKE_KEY = "sk-" + "abcdefghijklmnop123456"

pytestmark = [pytest.mark.integration]
NS = "default"


def base() -> dict[str, Any]:
    return {
        "apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
        "metadata": {"name": "admission-shop", "namespace": NS},
        "spec": {
            "phoneNumbers": ["+15557770001"],
            "profile": {"name": "Admission Deli",
                        "hours": {"monday": [{"open": "08:00", "close": "17:00"}]},
                        "menu": [{"name": "bagel", "price": "2.50"}]},
            "fallback": {"forwardTo": "+15557779999"},
            "scaling": {"replicas": 1, "maxCallsPerPod": 10},
        },
    }


def mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(base())
    fn(doc)
    return doc


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        node = doc
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


FULLWIDTH_DIGITS = "\uff11\uff15\uff15\uff15\uff11\uff12\uff13\uff14"  # 15551234 in full-width digits
ARABIC_INDIC_DIGITS = "\u0661\u0665\u0665\u0665\u0661\u0662\u0663\u0664"  # 15551234, Arabic-Indic

# (case id, mutation, words the API server's message must contain: the field path and the reason)
CASES: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    ("number-not-e164", _set("spec.phoneNumbers", ["555-1234"]), ("spec.phoneNumbers[0]", "should match")),
    ("no-numbers", _set("spec.phoneNumbers", []), ("spec.phoneNumbers", "at least 1")),
    ("duplicate-number", _set("spec.phoneNumbers", ["+15557770001", "+15557770001"]),
     ("spec.phoneNumbers[1]", "Duplicate value")),
    ("close-before-open", _set("spec.profile.hours.monday", [{"open": "17:00", "close": "08:00"}]),
     ("spec.profile.hours.monday[0].close", "close must be after open")),
    ("bad-hour-format", _set("spec.profile.hours.monday", [{"open": "8am", "close": "17:00"}]),
     ("spec.profile.hours.monday[0].open", "should match")),
    ("negative-price", _set("spec.profile.menu", [{"name": "bagel", "price": "-1"}]),
     ("spec.profile.menu[0].price", "should match")),
    ("negative-numeric-price", _set("spec.profile.menu", [{"name": "bagel", "price": -2.5}]),
     ("spec.profile.menu[0].price", "greater than or equal to 0")),
    ("price-is-a-list", _set("spec.profile.menu", [{"name": "bagel", "price": [1]}]),
     ("spec.profile.menu[0].price", "at most 0 items")),
    ("price-exponent", _set("spec.profile.menu", [{"name": "bagel", "price": "1e3"}]),
     ("spec.profile.menu[0].price", "should match")),
    # Size budgets: what the ConfigMap (1 MiB) could not hold is refused here, not by a 422 later.
    ("faq-answer-1.3MB", _set("spec.profile.faq", [{"question": "q?", "answer": "a" * 1_300_000}]),
     ("spec.profile.faq[0].answer", "Too long")),
    ("faq-over-text-budget", _set("spec.profile.faq", [{"question": f"q{i}?", "answer": "a" * 3900}
                                                       for i in range(17)]),
     ("spec.profile", "exceeds the budget of 65536 characters")),
    ("faq-too-many", _set("spec.profile.faq", [{"question": "q", "answer": "a"}] * 201),
     ("spec.profile.faq", "must have at most 200 items")),
    ("greeting-control-chars", _set("spec.profile.greeting", "hi\u001b[2J"),
     ("spec.profile.greeting", "should match")),
    # Keys pasted into the spec would land in a ConfigMap in plain text.
    ("key-in-model", _set("spec.providers", {"llm": {"name": "openai", "model": "sk-proj-abcdefghijklmnop123456"}}),
     ("spec.providers.llm.model", "looks like an API key")),
    ("key-in-baseurl-path", _set("spec.providers", {"llm": {"name": "openai",
                                                           "baseUrl": "https://x.example/" + FAKE_KEY}}),
     ("spec.providers.llm.baseUrl", "looks like an API key")),
    ("userinfo-in-baseurl", _set("spec.providers", {"llm": {"name": "openai",
                                                           "baseUrl": "https://u:p@llm.example.com/v1"}}),
     ("spec.providers.llm.baseUrl", "should match")),
    ("userinfo-in-webhook", _set("spec.webhook", {"url": "https://user:pass@hooks.example.com/x"}),
     ("spec.webhook.url", "should match")),
    ("secret-name-dot-dot", _set("spec.secretRef", {"name": "a..b"}), ("spec.secretRef.name", "should match")),
    ("unknown-provider", _set("spec.providers", {"llm": {"name": "skynet"}}),
     ("spec.providers.llm.name", "Unsupported value")),
    ("too-many-replicas", _set("spec.scaling.replicas", 500), ("spec.scaling.replicas", "less than or equal to 50")),
    ("zero-calls-per-pod", _set("spec.scaling.maxCallsPerPod", 0),
     ("spec.scaling.maxCallsPerPod", "greater than or equal to 1")),
    ("fallback-empty", _set("spec.fallback", {}), ("spec.fallback", "fallback needs forwardTo or playback")),
    ("fallback-loops-to-itself", _set("spec.fallback", {"forwardTo": "+15557770001"}),
     ("spec.fallback.forwardTo", "must not be one of the shop's own phoneNumbers")),
    ("playback-injection", _set("spec.fallback", {"playback": "x.wav\"/><action application=\"system"}),
     ("spec.fallback.playback", "should match")),
    # Hostile dialplan input (issue 11): FreeSWITCH expansion syntax, XML, newlines, unicode look-alikes, paths.
    *[(f"playback-hostile-{i}", _set("spec.fallback", {"playback": v}), ("spec.fallback.playback", "should match"))
      for i, v in enumerate([
          "${system(touch /tmp/pwned)}.wav", "${hupall(NORMAL_CLEARING)}", "${fsctl(shutdown)}",
          "$${sounds_dir}/x.wav", "x.wav\n", "/etc/passwd.wav", "../other-shop/recording.wav",
          "tone_stream://%(200,0,440)", "http://169.254.169.254/x.wav", "a.wav!b.wav", "caf\u00e9.wav",
          "\uff04{system(id)}.wav", "x.mp3", "<!--#exec-->.wav"])],
    ("playback-too-long", _set("spec.fallback", {"playback": "a" * 300 + ".wav"}),
     ("spec.fallback.playback", "Too long")),
    ("playback-preprocessor-word", _set("spec.fallback", {"playback": "X-Pre-Process.wav"}),
     ("spec.fallback.playback", "must not contain 'x-pre-process'")),
    ("name-preprocessor-word", _set("metadata.name", "shop-x-pre-process"),
     ("metadata.name must not contain 'x-pre-process'",)),
    ("forward-to-hostile", _set("spec.fallback", {"forwardTo": "+1555${system(id)}"}),
     ("spec.fallback.forwardTo", "should match")),
    ("forward-to-fullwidth-digits", _set("spec.fallback", {"forwardTo": "+" + FULLWIDTH_DIGITS}),
     ("spec.fallback.forwardTo", "should match")),
    ("staff-number-arabic-indic", _set("spec.transfer", {"staffNumbers": ["+" + ARABIC_INDIC_DIGITS]}),
     ("spec.transfer.staffNumbers[0]", "should match")),
    ("staff-number-newline", _set("spec.transfer", {"staffNumbers": ["+15557770002\n"]}),
     ("spec.transfer.staffNumbers[0]", "should match")),
    ("phone-number-dialplan-regex", _set("spec.phoneNumbers", ["+1555|.*"]), ("spec.phoneNumbers[0]", "should match")),
    ("too-many-staff-numbers", _set("spec.transfer", {"staffNumbers": [f"+1555777{i:04d}" for i in range(11)]}),
     ("spec.transfer.staffNumbers", "must have at most 10 items")),
    ("webhook-not-http", _set("spec.webhook", {"url": "ftp://example.invalid/hook"}),
     ("spec.webhook.url", "should match")),
    ("ring-seconds-too-short", _set("spec.transfer", {"ringSeconds": 1}),
     ("spec.transfer.ringSeconds", "greater than or equal to 5")),
    ("max-call-too-long", _set("spec.maxCallSeconds", 86400), ("spec.maxCallSeconds", "less than or equal to 3600")),
    ("limits-below-requests", _set("spec.resources", {"requests": {"memory": "1Gi"}, "limits": {"memory": "256Mi"}}),
     ("spec.resources.limits.memory", "limits.memory must not be below requests.memory")),
    ("secret-name-invalid", _set("spec.secretRef", {"name": "Not_A_Name"}), ("spec.secretRef.name", "should match")),
    ("name-not-dns-1035", _set("metadata.name", "9-lives-cafe"), ("metadata.name must be a DNS-1035 label",)),
    ("missing-profile", lambda d: d["spec"].pop("profile"), ("spec.profile", "Required value")),
]


@pytest.fixture(scope="module")
def cluster(control_plane: Any) -> Any:
    install(control_plane)
    return control_plane


def test_valid_base_is_accepted(cluster: Any) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(base()), check=False)
    assert out.returncode == 0, out.stderr


ACCEPTED: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("dotted-secret-name", _set("spec.secretRef", {"name": "admission.provider-keys"})),
    ("numeric-price", _set("spec.profile.menu", [{"name": "bagel", "price": 4.5}, {"name": "roll", "price": 3}])),
    ("unicode-text", _set("spec.profile.greeting", "Bonjour, caf\u00e9 \u2615 \u4f60\u597d\n\tbienvenue")),
    ("faq-at-budget", _set("spec.profile.faq", [{"question": f"q{i}?", "answer": "a" * 3900} for i in range(16)])),
    ("plain-sound-path", _set("spec.fallback", {"playback": "shops/admission/closed.v2.wav"})),
]


@pytest.mark.parametrize(("case", "change"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_legal_input_is_accepted(cluster: Any, case: str, change: Any) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(mutate(change)), check=False)
    assert out.returncode == 0, f"{case}: {out.stderr}"


@pytest.mark.parametrize(("case", "change", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_spec_rejected_naming_field_and_reason(cluster: Any, case: str, change: Any,
                                                       words: tuple[str, ...]) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(mutate(change)), check=False)
    assert out.returncode != 0, f"{case} was accepted"
    assert "is invalid" in out.stderr, out.stderr
    for w in words:
        assert w in out.stderr, f"{case}: {w!r} not in {out.stderr}"


def test_tenant_cannot_choose_the_agent_image(cluster: Any) -> None:
    # spec.image is gone: the platform picks the image that runs with the namespace's provider keys.
    doc = mutate(_set("spec.image", {"repository": "evil.example/miner", "tag": "latest"}))
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert out.returncode != 0, "spec.image was accepted"
    assert 'unknown field "spec.image"' in out.stderr, out.stderr
