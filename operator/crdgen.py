"""Generate the StoreAgent CRD from the pydantic model: `python -P -m storeagent.operator.crdgen crds/`.

Pydantic's JSON schema is close to, but not, a Kubernetes structural schema: `$ref`s are inlined (the one
recursive model, ProviderChoice.fallbacks, is cut at depth 2 and left to the operator's own validation),
`anyOf [X, null]` becomes X, Decimal becomes an untyped field that admits a decimal string or a
non-negative number (a YAML `4.5` is normalised by the operator, not refused), `format: time` becomes a pattern
(the API server does not know that format), titles and defaults are dropped (the operator applies defaults,
so stored objects stay as the user wrote them), and CEL rules from `model.CEL_RULES` are attached.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from storeagent.operator import model
from storeagent.shop import PRICE_RE

TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
DECIMAL_PATTERN = f"^{PRICE_RE}$"
RECURSION_DEPTH = 2
_DROP = {"title", "default", "examples"}

Schema = dict[str, Any]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _convert(node: Schema, defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    if "$ref" in node:
        name = _ref_name(node["$ref"])
        if stack.count(name) >= RECURSION_DEPTH:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                    "description": f"{name} (nested deeper than {RECURSION_DEPTH}; validated by the operator)"}
        out = _convert(defs[name], defs, (*stack, name))
        extra = {k: v for k, v in node.items() if k != "$ref" and k not in _DROP}
        out.update(extra)
        return out
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        types = sorted(o.get("type", "") for o in options)
        if types == ["number", "string"]:  # Decimal: "4.50" (exact) or 4.5 (a YAML number, normalised)
            # Untyped (CEL cannot see such a field), so only value validations apply, each to its own JSON
            # type: a string must match, a number must be >= 0, an object or list must be empty. The
            # operator's own parse refuses the rest (bool, empty object) with a condition naming the field.
            merged: Schema = {"x-kubernetes-preserve-unknown-fields": True, "x-storeagent-decimal": True,
                              "pattern": DECIMAL_PATTERN, "maxLength": 13, "minimum": 0, "maximum": 99999999,
                              "maxProperties": 0, "maxItems": 0}
        elif len(options) == 1:
            merged = _convert(options[0], defs, stack)
        else:
            raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
        merged.update({k: _convert_value(k, v, defs, stack) for k, v in node.items()
                       if k not in ("anyOf", *_DROP)})
        return _finish(merged)
    out = {k: _convert_value(k, v, defs, stack) for k, v in node.items() if k not in _DROP and k != "$defs"}
    if out.get("format") == "time":
        del out["format"]
        out["pattern"] = TIME_PATTERN
    title = node.get("title")
    if title in model.CEL_RULES and node.get("type") == "object":
        out["x-kubernetes-validations"] = copy.deepcopy(model.CEL_RULES[title])
    if node.get("type") == "object" and "additionalProperties" in out and out["additionalProperties"] is False:
        del out["additionalProperties"]  # structural schemas prune unknown fields instead
    return _finish(out)


def _convert_value(key: str, value: Any, defs: dict[str, Schema], stack: tuple[str, ...]) -> Any:
    if key == "properties":
        return {k: _convert(v, defs, stack) for k, v in value.items()}
    if key in ("items", "additionalProperties") and isinstance(value, dict):
        return _convert(value, defs, stack)
    return value


def _finish(node: Schema) -> Schema:
    node.pop("x-storeagent-decimal", None)
    # CEL cost estimation needs bounded lists and strings, or the API server refuses the rules.
    if node.get("type") == "array":
        node.setdefault("maxItems", 500)
    if node.get("type") == "string" and "enum" not in node:
        node.setdefault("maxLength", 8 if node.get("pattern") == TIME_PATTERN else 4096)
    return node


def spec_schema() -> Schema:
    raw = model.StoreAgentSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    out = _convert(raw, defs, ("StoreAgentSpec",))
    # Unique numbers: a set list rejects duplicates with "Duplicate value".
    out["properties"]["phoneNumbers"]["x-kubernetes-list-type"] = "set"
    return out


def status_schema() -> Schema:
    raw = model.StoreAgentStatus.model_json_schema(by_alias=True, mode="serialization")
    out = _convert(raw, raw.get("$defs", {}), ("StoreAgentStatus",))
    conds = out["properties"]["conditions"]
    conds["x-kubernetes-list-type"] = "map"
    conds["x-kubernetes-list-map-keys"] = ["type"]
    conds["maxItems"] = 16
    return out


def crd() -> dict[str, Any]:
    columns = [
        {"name": "Numbers", "type": "string", "jsonPath": ".status.phoneNumbers"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Calls", "type": "integer", "jsonPath": ".status.callsActive", "description": "live calls"},
        {"name": "P95-ms", "type": "number", "jsonPath": ".status.voiceToVoice.p95Ms",
         "description": "voice-to-voice latency p95 (ms)"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": copy.deepcopy(model.ROOT_CEL_RULES),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.PLURAL}.{model.GROUP}"},
        "spec": {
            "group": model.GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": model.PLURAL,
                "singular": model.KIND.lower(),
                "kind": model.KIND,
                "listKind": f"{model.KIND}List",
                "shortNames": list(model.SHORT_NAMES),
                "categories": ["storeagent"],
            },
            "versions": [
                {
                    "name": model.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `make crds` from operator/model.py. Do not edit: tests/unit fails on drift.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0] if argv else "crds")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model.PLURAL}.{model.GROUP}.yaml"
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
