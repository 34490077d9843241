"""The CRD is generated from the pydantic model; the checked-in YAML must match (run `make crds`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from storeagent.operator import crdgen, model

CRD = Path(__file__).resolve().parents[2] / "crds" / "storeagents.storeagent.dev.yaml"


def test_checked_in_crd_matches_the_model() -> None:
    assert CRD.read_text() == crdgen.render(), "crds/ drifted from operator/model.py: run `make crds`"


def _walk(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for k, v in node.items():
            out.extend(_walk(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_walk(v, f"{path}[{i}]"))
    return out


def test_schema_is_structural() -> None:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    schema = version["openAPIV3Schema"] if "openAPIV3Schema" in version else version["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if "properties" in node:
            assert node.get("type") == "object", path


def test_crd_shape() -> None:
    crd = crdgen.crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["stag"] and "sa" not in names["shortNames"]
    v = crd["spec"]["versions"][0]
    assert v["subresources"] == {"status": {}}
    cols = [c["name"] for c in v["additionalPrinterColumns"]]
    assert cols == ["Numbers", "Ready", "Calls", "P95-ms", "Age"]
    spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["phoneNumbers"]["x-kubernetes-list-type"] == "set"
    assert spec["properties"]["phoneNumbers"]["items"]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert {r["rule"] for r in spec["x-kubernetes-validations"]} == {
        r["rule"] for r in model.CEL_RULES["StoreAgentSpec"]}
    # recursion (ProviderChoice.fallbacks) is cut, not infinite
    llm = spec["properties"]["providers"]["properties"]["llm"]
    inner = llm["properties"]["fallbacks"]["items"]["properties"]["fallbacks"]["items"]
    assert inner.get("x-kubernetes-preserve-unknown-fields") is True
