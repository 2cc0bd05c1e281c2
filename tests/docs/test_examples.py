"""The YAML examples of the guide pages (```yaml blocks in nbs/docs/*.ipynb) are valid
resource.k8s.io/v1 objects: the local kube-apiserver creates each with dryRun=All, which runs
the API's validation, including compiling every CEL selector."""
from __future__ import annotations

import json
import logging
import re

import pytest
import yaml

from mock_accel.kube import KubeClient, KubeError
from tools.docs import build

pytestmark = pytest.mark.cluster

PATHS = {"DeviceClass": "/apis/resource.k8s.io/v1/deviceclasses",
         "ResourceClaim": "/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims",
         "ResourceClaimTemplate":
             "/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaimtemplates",
         "Pod": "/api/v1/namespaces/{namespace}/pods"}


def examples() -> list[tuple[str, dict]]:
    found = []
    for notebook in sorted((build.NBS / "docs").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for block in re.findall(r"```yaml\n(.*?)```", "".join(cell["source"]), re.S):
                for doc in yaml.safe_load_all(block):
                    if isinstance(doc, dict) and "apiVersion" in doc:
                        found.append((f"{notebook.stem}:{doc['kind']}/"
                                      f"{doc['metadata']['name']}", doc))
    return found


def dry_run_create(client: KubeClient, obj: dict) -> dict:
    namespace = obj["metadata"].get("namespace", "default")
    path = PATHS[obj["kind"]].format(namespace=namespace)
    return client.request("POST", path, obj, params={"dryRun": "All"})


@pytest.fixture(scope="module")
def client(cluster) -> KubeClient:
    return KubeClient.from_kubeconfig(cluster.kubeconfig)


def test_the_guide_has_examples():
    kinds = {obj["kind"] for _, obj in examples()}
    assert {"DeviceClass", "ResourceClaim"} <= kinds, kinds


@pytest.mark.parametrize("name,obj", examples(), ids=[n for n, _ in examples()])
def test_example_is_accepted_by_the_api_server(client, name, obj):
    assert obj["apiVersion"] in ("resource.k8s.io/v1", "v1"), (name, obj["apiVersion"])
    created = dry_run_create(client, obj)
    assert created["metadata"]["name"] == obj["metadata"]["name"]


def test_a_broken_selector_is_refused(client):
    """The check above can fail: the API server compiles CEL and refuses what does not."""
    _, good = next((n, o) for n, o in examples() if o["kind"] == "DeviceClass")
    broken = json.loads(json.dumps(good))
    broken["metadata"]["name"] += "-broken"
    broken["spec"]["selectors"][0]["cel"]["expression"] = \
        'device.attributes["mock-accel.example.com"].numaNode == "zero" &&'
    with pytest.raises(KubeError) as err:
        dry_run_create(client, broken)
    assert err.value.status == 422, err.value


def test_getting_started_claim_and_pod_are_accepted(client, namespace):
    """The claim and pod that the getting-started page builds from the chart's values, and the
    kind section's manifest (tests/kind/pf-pod.yaml)."""
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell

    notebook = build.NBS / "docs" / "01_getting_started.ipynb"
    shell = CaptureShell(path=notebook.parent)
    quiet = logging.getLogger("mock_accel")
    level = quiet.level   # the page quiets mock_accel's logs; give this process its level back
    try:
        shell.run_all(read_nb(notebook), exc_stop=True)
    finally:
        quiet.setLevel(level)
    claim, pod = shell.user_ns["claim"], shell.user_ns["pod"]
    assert claim["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] == \
        "mock-accel-pf"
    # the kind section shows tests/kind/pf-pod.yaml, the manifest of the kind test
    kind_claim, kind_pod = shell.user_ns["pf_claim"], shell.user_ns["pf_pod"]
    assert kind_pod["spec"]["resourceClaims"][0]["resourceClaimName"] == \
        kind_claim["metadata"]["name"]
    for obj in (claim, pod, kind_claim, kind_pod):
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["namespace"] = namespace
        assert dry_run_create(client, obj)["metadata"]["name"] == obj["metadata"]["name"]
