"""docker/kuberay/*.yaml against KubeRay's CRD schemas (docker/kuberay/schemas, v1.7.0).

The API server prunes fields a CRD does not declare; with strict field validation (kubectl's
default since 1.27 for `apply` is a warning, `--validate=strict` an error) an unknown field is
refused. The check here is the strict one: every object the schema describes without
`x-kubernetes-preserve-unknown-fields` is closed to other fields, so a misspelt key fails.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

KUBERAY = Path(__file__).resolve().parents[1] / "docker" / "kuberay"
SCHEMAS = {"RayCluster": "raycluster-v1.json", "RayJob": "rayjob-v1.json"}


def strict(schema: dict) -> dict:
    """The schema with additionalProperties: false on every object that lists its properties
    and does not keep unknown fields."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def validator(kind: str):
    schema = strict(json.loads((KUBERAY / "schemas" / SCHEMAS[kind]).read_text()))
    return jsonschema.Draft7Validator(schema)


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "ray.io/v1":
                found.append((f"{path.name}:{doc['kind']}", doc))
    return found


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_manifest_validates_against_the_crd_schema(name, doc):
    errors = sorted(validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{name}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors
    )


def test_the_manifests_are_the_ones_we_mean():
    kinds = sorted(doc["kind"] for _, doc in documents())
    assert kinds == ["RayCluster", "RayJob"]
    cluster = next(doc for _, doc in documents() if doc["kind"] == "RayCluster")["spec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert all(g["minReplicas"] == 0 for g in cluster["workerGroupSpecs"])
    job = next(doc for _, doc in documents() if doc["kind"] == "RayJob")["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": "monosweep"}


def test_a_misspelt_field_is_caught():
    doc = next(doc for _, doc in documents() if doc["kind"] == "RayCluster")
    bad = copy.deepcopy(doc)
    bad["spec"]["enableInTreeAutoscalling"] = True
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    messages = [e.message for e in validator("RayCluster").iter_errors(bad)]
    assert any("enableInTreeAutoscalling" in m for m in messages), messages
    assert any("'two' is not of type 'integer'" in m for m in messages), messages
