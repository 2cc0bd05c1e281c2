"""The chart against the local control plane (kube-apiserver v1.37): a server-side dry-run of
every rendered object (KMM's Module CRD installed, so the Module is validated too), a real
`helm install`, and the ValidatingAdmissionPolicy tried with real ServiceAccount tokens bound to
pods on nodes."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest

from mock_accel.claims import ALL_CLAIMS_PATH
from mock_accel.kube import KubeClient, KubeError
from mock_accel.slices import slice_name

from .chart import CHART, find, helm, render
from .kmm_crd import CRD_NAME, module_crd, real_crd, schema_paths, transcribed_crd

pytestmark = pytest.mark.cluster
MODES = {"default": (), "prebuilt": ("kernelModule.enabled=true",),
         "build": ("kernelModule.enabled=true", "kernelModule.mode=build",
                   "kernelModule.imageRepoSecret=push-creds"),
         "privileged-agent": ("draDriver.nodeAgent.securityContext.privileged=true",
                              "draDriver.nodeAgent.securityContext.allowPrivilegeEscalation=true"),
         "simulation": ("simulation.enabled=true",)}


@pytest.fixture(scope="module")
def kmm_crd(api):
    crd, origin = module_crd()
    print(f"\nKMM Module CRD: {origin}")
    api.apply(crd)

    def established():
        got = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)
        ok = any(c["type"] == "Established" and c["status"] == "True"
                 for c in (got.get("status") or {}).get("conditions") or [])
        return ok and api.resource("kmm.sigs.x-k8s.io/v1beta1", "Module")
    api.wait_for(established, timeout=30, what="the Module CRD to be served")
    yield origin
    # Other tests of the session see the cluster as it was (no Module API).
    api.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)


def dry_run(api: KubeClient, obj: dict) -> dict:
    """Server-side apply with dryRun=All and Strict field validation (unknown fields fail)."""
    return api.request(
        "PATCH", api.path(obj["apiVersion"], obj["kind"], obj["metadata"]["name"],
                          obj["metadata"].get("namespace")),
        obj, params={"fieldManager": "mock-device-chart-test", "force": "true", "dryRun": "All",
                     "fieldValidation": "Strict"},
        content_type="application/apply-patch+yaml")


def _assert_kept(sent, got, path: str) -> None:
    if isinstance(sent, dict):
        assert isinstance(got, dict), path
        for key, value in sent.items():
            assert key in got, f"{path}.{key} was dropped by the API server"
            _assert_kept(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(got, list) and len(got) == len(sent), path
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            _assert_kept(a, b, f"{path}[{i}]")
    else:
        assert sent == got or (isinstance(got, str) and str(sent) == got), (path, sent, got)


def _unique() -> str:
    return uuid.uuid4().hex[:6]


def _isolated(tag: str) -> tuple[str, ...]:
    """Values that keep a test's cluster-scoped names and slices apart from everyone else's."""
    driver = f"{tag}.chart-test.example.com"
    return (f"namespace.name=ns-{tag}", f"draDriver.name={driver}",
            f"draDriver.nodeAgent.pluginSocket=/var/lib/kubelet/plugins/{driver}",
            f"deviceClasses[0].name={tag}-pf", "deviceClasses[0].deviceType=pf",
            "deviceClasses[0].enabled=true", "deviceClasses[1].enabled=true",
            f"deviceClasses[1].name={tag}-vf", "deviceClasses[1].deviceType=vf",
            "draDriver.nodeSelector.mock-accel-test=no-such-node")


@pytest.mark.parametrize("mode", MODES)
def test_server_side_dry_run(cluster, api, kmm_crd, mode):
    tag = f"dry{_unique()}"
    objs = render(*MODES[mode], *_isolated(tag), release=tag)
    (ns,) = find(objs, "Namespace")
    api.apply(ns)  # for real: the namespaced objects need it (and PSA validates its labels)
    try:
        for obj in objs:
            if obj["kind"] == "Namespace":
                continue
            got = dry_run(api, obj)
            assert (got["kind"], got["metadata"]["name"]) == (obj["kind"],
                                                               obj["metadata"]["name"])
            # Nothing we sent was pruned or changed (the server may add defaults).
            _assert_kept(obj, got, obj["kind"])
            if obj["kind"] == "DaemonSet":  # the probes (issue 15 item 4), as the API keeps them
                (c,) = got["spec"]["template"]["spec"]["containers"]
                handler = "grpc" if c["name"] == "node-agent" else "httpGet"
                assert handler in c["livenessProbe"] and handler in c["readinessProbe"], c
        assert ("Module" in {o["kind"] for o in objs}) == (mode in ("prebuilt", "build"))
        print(f"{mode}: {len(objs)} objects accepted by the API server "
              f"({', '.join(sorted({o['kind'] for o in objs}))})")
    finally:
        api.delete("v1", "Namespace", ns["metadata"]["name"])


def test_dry_run_refuses_a_broken_module(api, kmm_crd):
    """The Module dry-run is a real check: a Module missing required fields is refused."""
    tag = f"bad{_unique()}"
    objs = render(*MODES["prebuilt"], *_isolated(tag), release=tag)
    (module,) = find(objs, "Module")
    (ns,) = find(objs, "Namespace")
    api.apply(ns)
    try:
        mapping = module["spec"]["moduleLoader"]["container"]["kernelMappings"][0]
        mapping["imag"] = mapping.pop("containerImage")  # a typo: unknown, and required missing
        with pytest.raises(KubeError) as err:
            dry_run(api, module)
        print(err.value.message)
        assert "kernelMappings[0].imag: field not declared in schema" in err.value.message
        mapping.pop("imag")
        with pytest.raises(KubeError) as err:
            dry_run(api, module)
        print(err.value.message)
        assert err.value.status == 422
        assert "kernelMappings[0].containerImage: Required value" in err.value.message
    finally:
        api.delete("v1", "Namespace", ns["metadata"]["name"])


def test_transcription_agrees_with_kmm():
    """Our fallback CRD declares only what KMM's own CRD has (type and required fields)."""
    crd, why = real_crd()
    if crd is None:
        pytest.skip(f"KMM's own CRD is not available here: {why}")
    (real,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    (ours,) = transcribed_crd()["spec"]["versions"]
    real_paths = schema_paths(real["schema"]["openAPIV3Schema"])
    ours_paths = schema_paths(ours["schema"]["openAPIV3Schema"])
    closed = 0
    for path, (typ, required, is_open) in ours_paths.items():
        assert path in real_paths, f"{path}: not in KMM's CRD"
        assert typ == real_paths[path][0], (path, typ, real_paths[path])
        if not is_open and path not in (".", ".metadata"):
            closed += 1
            assert set(required) == set(real_paths[path][1]), (path, required, real_paths[path])
    print(f"{len(ours_paths)} paths of our transcription agree with KMM's CRD "
          f"({closed} closed, the rest open)")
    # Every path the chart renders is closed (checked) in the transcription.
    for path in (".spec.moduleLoader.container.modprobe.parameters",
                 ".spec.moduleLoader.container.kernelMappings[].build.buildArgs[].value",
                 ".spec.moduleLoader.container.kernelMappings[].build.dockerfileConfigMap.name",
                 ".spec.imageRepoSecret.name", ".spec.moduleLoader.container.modprobe.dirName"):
        assert path in ours_paths and not ours_paths[path][2], path
    assert crd["metadata"]["name"] == CRD_NAME


# ------------------------------------------------------------------------------ helm install

def _release_bytes(api: KubeClient, namespace: str, release: str) -> int:
    (secret,) = api.list("v1", "Secret", namespace=namespace,
                         labelSelector=f"owner=helm,name={release}")
    blob = base64.b64decode(secret["data"]["release"])
    json.loads(gzip.decompress(base64.b64decode(blob)))  # it is the release, readable
    return len(json.dumps(secret))


@pytest.mark.parametrize("mode", ["default", "build", "no-classes", "simulation"])
def test_helm_install_and_uninstall(cluster, api, kmm_crd, mode):
    tag = f"inst{_unique()}"
    ns = f"ns-{tag}"
    extra = ("deviceClasses[0].enabled=false", "deviceClasses[1].enabled=false") * (
        mode == "no-classes")
    sets = [a for s in (*MODES.get(mode, ()), *_isolated(tag), *extra) for a in ("--set", s)]
    # The chart makes namespace.name itself; the release record stays in `default`.
    out = helm("install", tag, str(CHART), *sets, kubeconfig=str(cluster.kubeconfig)).stdout
    try:
        notes = out.split("NOTES:", 1)[1]
        assert f"--field-selector spec.driver={tag}.chart-test.example.com" in notes
        assert (f"exactly: {{deviceClassName: {tag}-pf, count: 1}}" in notes) == (
            mode != "no-classes")
        classes = {d["metadata"]["name"] for d in api.list("resource.k8s.io/v1", "DeviceClass")}
        assert ({f"{tag}-pf", f"{tag}-vf"} <= classes) == (mode != "no-classes")
        labels = api.get("v1", "Namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
        assert {d["metadata"]["name"] for d in api.list("apps/v1", "DaemonSet", namespace=ns)} == {
            f"{tag}-controller", f"{tag}-node-agent"}
        assert ("-c simulate" in notes) == (mode == "simulation"), notes
        # NOTES select by the release's labels (issue 15 item 8); they find what was installed
        release = f"app.kubernetes.io/instance={tag}"
        assert f"kubectl get daemonsets,pods -n {ns} -l {release} -o wide" in notes, notes
        for component in ("controller", "node-agent"):
            selector = f"{release},app.kubernetes.io/component={component}"
            assert f"kubectl logs -n {ns} -l {selector}" in notes, notes
            assert [d["metadata"]["name"] for d in api.list(
                "apps/v1", "DaemonSet", namespace=ns, labelSelector=selector)] == [
                f"{tag}-{component}"]
        assert {r["metadata"]["name"] for r in api.list(
            "rbac.authorization.k8s.io/v1", "ClusterRole", labelSelector=release)} == {
            f"{tag}-controller", f"{tag}-node-agent"}
        if mode == "build":
            module = api.get("kmm.sigs.x-k8s.io/v1beta1", "Module", "mock-accel", ns)
            assert module["spec"]["imageRepoSecret"] == {"name": "push-creds"}
            size = _release_bytes(api, "default", tag)
            print(f"release Secret with the inlined Dockerfile: {size / 1024:.0f} KiB")
            assert size < 1024 * 1024
    finally:
        helm("uninstall", tag, kubeconfig=str(cluster.kubeconfig))
    assert api.get_or_none("rbac.authorization.k8s.io/v1", "ClusterRole",
                           f"{tag}-controller") is None


def test_install_into_an_existing_namespace_says_what_to_do(cluster, api):
    """`--create-namespace` (or any namespace made outside the release) with namespace.create."""
    tag = f"ex{_unique()}"
    ns = cluster.create_namespace(f"ns-{tag}")
    sets = [a for s in _isolated(tag) for a in ("--set", s)]
    try:
        proc = helm("install", tag, str(CHART), "--namespace", ns, *sets,
                    kubeconfig=str(cluster.kubeconfig), check=False)
        assert proc.returncode != 0
        assert "set namespace.create=false" in proc.stderr, proc.stderr
        helm("install", tag, str(CHART), "--namespace", ns, *sets,
             "--set", "namespace.create=false", kubeconfig=str(cluster.kubeconfig))
        helm("uninstall", tag, "--namespace", ns, kubeconfig=str(cluster.kubeconfig))
    finally:
        cluster.delete_namespace(ns)


# ------------------------------------------------------------------------------ the VAP

def _slice(name: str, driver: str, node: str, device: str = "mock0",
           pool: str | None = None) -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": pool or node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": device}]}}


def _token_api(cluster, api: KubeClient, namespace: str, sa: str, pod: dict | None) -> KubeClient:
    """A client that authenticates with a TokenRequest token of `sa` (bound to `pod`)."""
    spec: dict = {"audiences": [], "expirationSeconds": 600}
    if pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod",
                                  "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
    tr = api.request("POST", api.path("v1", "ServiceAccount", sa, namespace, "token"),
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": spec})
    client = KubeClient(cluster.server, ca_file=cluster.pki.ca.cert, timeout=30)
    client.session.cert = None
    client.session.headers["Authorization"] = f"Bearer {tr['status']['token']}"
    return client


def _pod_on(api: KubeClient, namespace: str, name: str, sa: str, node: str) -> dict:
    return api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeName": node, "serviceAccountName": sa,
                                "terminationGracePeriodSeconds": 0,
                                "containers": [{"name": "c",
                                                "image": "registry.k8s.io/pause:3.10"}]}},
                      namespace)


def _denied(fn) -> KubeError:
    with pytest.raises(KubeError) as err:
        fn()
    assert err.value.status == 403, err.value
    return err.value


def _remove(cluster, api: KubeClient, objs: list[dict], slices=(), nodes=()) -> None:
    """Undo a test's cluster-scoped setup: its slices, the rendered objects (the namespace's
    ServiceAccounts go with the namespace), its nodes."""
    for name in slices:
        api.delete("resource.k8s.io/v1", "ResourceSlice", name)
    for obj in reversed(objs):
        if obj["kind"] != "ServiceAccount":
            api.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
    for node in nodes:
        cluster.delete_node(node)


def test_admission_policy_keeps_each_node_to_its_own_slices(cluster, api, namespace):
    tag = f"vap{_unique()}"
    driver = f"{tag}.chart-test.example.com"
    sets = (*_isolated(tag), f"namespace.name={namespace}", "namespace.create=false")
    objs = [o for o in render(*sets, release=tag)
            if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    assert len(objs) == 8, [o["kind"] for o in objs]
    node_a, node_b = cluster.create_nodes(2, prefix=tag)
    created: list[str] = []
    for obj in objs:
        api.apply(obj)
    try:
        pod_a = _pod_on(api, namespace, "publisher-a", f"{tag}-controller", node_a)
        ctrl = _token_api(cluster, api, namespace, f"{tag}-controller", pod_a)
        slices = "/apis/resource.k8s.io/v1/resourceslices"

        # The policy takes a moment to be loaded: until then the cross-node write goes through.
        attempt = iter(range(10_000))

        def cross_node_denied():
            name = f"{tag}-b-{next(attempt)}"
            try:
                ctrl.request("POST", slices, _slice(name, driver, node_b))
            except KubeError as e:
                return e if e.status == 403 and "may write only" in e.message else None
            api.delete("resource.k8s.io/v1", "ResourceSlice", name)
            return None
        err = api.wait_for(cross_node_denied, timeout=30, what="the VAP to deny a cross-node write")
        print("cross-node create:", err.message)
        assert f"a pod on node {node_a} may write only that node's ResourceSlices, not those " \
               f"of node {node_b}" in err.message

        # Own node: create, update, delete all allowed.
        own_name = slice_name(node_a, driver, 0)
        own = ctrl.request("POST", slices, _slice(own_name, driver, node_a))
        created.append(own["metadata"]["name"])
        own["spec"]["devices"].append({"name": "mock1"})
        own = ctrl.request("PUT", f"{slices}/{own_name}", own)
        assert [d["name"] for d in own["spec"]["devices"]] == ["mock0", "mock1"]

        # Another node's slice (made by the admin): no update, no delete.
        other_name = slice_name(node_b, driver, 0)
        other = api.create(_slice(other_name, driver, node_b))
        created.append(other["metadata"]["name"])
        other["spec"]["devices"].append({"name": "mock9"})
        print("cross-node update:", _denied(lambda: ctrl.request(
            "PUT", f"{slices}/{other_name}", other)).message)
        print("cross-node delete:", _denied(lambda: ctrl.request(
            "DELETE", f"{slices}/{other_name}")).message)
        # Moving a slice to another node fails too (the API or the policy refuses it).
        moved = dict(own, spec={**own["spec"], "nodeName": node_b})
        with pytest.raises(KubeError):
            ctrl.request("PUT", f"{slices}/{own_name}", moved)
        # Another driver's slice on its own node: refused.
        msg = _denied(lambda: ctrl.request("POST", slices, _slice(
            f"{tag}-x", "other.example.com", node_a))).message
        assert f"only ResourceSlices of driver {driver}" in msg, msg

        ctrl.request("DELETE", f"{slices}/{own_name}")
        created.remove(own_name)

        # A token of the same account that is not bound to a pod carries no node: refused.
        unbound = _token_api(cluster, api, namespace, f"{tag}-controller", None)
        msg = _denied(lambda: unbound.request("POST", slices, _slice(
            f"{tag}-u", driver, node_a))).message
        assert "only with a token bound to a pod on a node" in msg, msg

        # The node agent's account: no slice writes at all (RBAC), reads the claims it prepares.
        pod_agent = _pod_on(api, namespace, "agent-a", f"{tag}-node-agent", node_a)
        agent = _token_api(cluster, api, namespace, f"{tag}-node-agent", pod_agent)
        msg = _denied(lambda: agent.request("POST", slices, _slice(
            slice_name(node_a, driver, 1), driver, node_a))).message
        assert 'cannot create resource "resourceslices"' in msg, msg
        claim = api.create({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                            "metadata": {"name": "c1"},
                            "spec": {"devices": {"requests": [{"name": "r", "exactly": {
                                "deviceClassName": f"{tag}-pf", "count": 1}}]}}}, namespace)
        got = agent.request("GET", api.path("resource.k8s.io/v1", "ResourceClaim", "c1",
                                             namespace))
        assert got["metadata"]["uid"] == claim["metadata"]["uid"]
    finally:
        _remove(cluster, api, objs, created, (node_a, node_b))


def _rules(client: KubeClient, namespace: str) -> set[tuple]:
    """(group, resource, verb) the client's own credentials allow in `namespace`."""
    review = client.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                            {"apiVersion": "authorization.k8s.io/v1",
                             "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}})
    return {(group, resource, verb, tuple(rule.get("resourceNames") or ()))
            for rule in review["status"]["resourceRules"]
            for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def test_node_agent_lists_claims_and_nothing_more(cluster, api, namespace):
    """The rebuild of a corrupt checkpoint lists every ResourceClaim (nbs/26_claims
    `_api_claims`): the node agent's account may, cluster-wide, and gets nothing else."""
    tag = f"rb{_unique()}"
    sets = (*_isolated(tag), f"namespace.name={namespace}", "namespace.create=false")
    objs = [o for o in render(*sets, release=tag)
            if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    (node,) = cluster.create_nodes(1, prefix=tag)
    other_ns = cluster.create_namespace()
    for obj in objs:
        api.apply(obj)
    try:
        pod = _pod_on(api, namespace, "agent", f"{tag}-node-agent", node)
        agent = _token_api(cluster, api, namespace, f"{tag}-node-agent", pod)
        claim = api.create({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                            "metadata": {"name": "elsewhere"},
                            "spec": {"devices": {"requests": [{"name": "r", "exactly": {
                                "deviceClassName": f"{tag}-pf", "count": 1}}]}}}, other_ns)

        def listed():
            try:
                items = agent.request("GET", ALL_CLAIMS_PATH)["items"]
            except KubeError as err:
                return None if err.status == 403 else err   # RBAC caches: a moment
            return {c["metadata"]["uid"] for c in items}
        uids = api.wait_for(listed, timeout=30, what="the agent to list claims")
        assert claim["metadata"]["uid"] in uids, uids   # another namespace's claim: cluster-wide
        # what it must not do with claims, or anything else
        path = api.path("resource.k8s.io/v1", "ResourceClaim", "elsewhere", other_ns)
        _denied(lambda: agent.request("DELETE", path))
        _denied(lambda: agent.request("PUT", path, claim))
        _denied(lambda: agent.request("PUT", path + "/status", claim))
        _denied(lambda: agent.request("GET", api.path("v1", "Secret", namespace=other_ns)))
        _denied(lambda: agent.request("GET", "/apis/resource.k8s.io/v1/resourceslices"))
        # exactly get and list on resourceclaims beyond what any account has
        baseline = _token_api(cluster, api, namespace, "default", None)
        extra = _rules(agent, other_ns) - _rules(baseline, other_ns)
        assert extra == {("resource.k8s.io", "resourceclaims", "get", ()),
                         ("resource.k8s.io", "resourceclaims", "list", ())}, extra
    finally:
        _remove(cluster, api, objs)
        cluster.delete_namespace(other_ns)
        cluster.delete_node(node)


def test_admission_policy_ties_slice_names_and_pools_to_the_node(cluster, api, namespace):
    """Issue 15 item 9: a pod on node A can neither take node B's slice names (B's publisher
    would back off forever on 409) nor publish B's pool; B's own pod still can, with the names
    mock_accel.slices.slice_name makes — also for a node name so long that they are cut and
    hashed."""
    tag = f"nm{_unique()}"
    driver = f"{tag}.chart-test.example.com"
    sets = (*_isolated(tag), f"namespace.name={namespace}", "namespace.create=false")
    objs = [o for o in render(*sets, release=tag)
            if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    node_a, node_b = cluster.create_nodes(2, prefix=tag)
    # 233 characters, then a dot: slice_name cuts "<node>-<driver>" at 234 and drops the dot
    base = tag + "a" * (233 - len(tag))
    long_node = base + ".zz" + "y" * 5
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": long_node}, "spec": {}})
    long_name = slice_name(long_node, driver, 3)
    assert long_name.startswith(base + "-") and len(long_name) == len(base) + 13
    for obj in objs:
        api.apply(obj)
    made: list[str] = []
    slices = "/apis/resource.k8s.io/v1/resourceslices"
    sa = f"{tag}-controller"
    try:
        a, b, long = (_token_api(cluster, api, namespace, sa, _pod_on(api, namespace, f"p{i}",
                                                                    sa, node))
                      for i, node in enumerate((node_a, node_b, long_node)))

        def create(client: KubeClient, name: str, node: str, pool: str | None = None) -> dict:
            got = client.request("POST", slices, _slice(name, driver, node, pool=pool))
            made.append(name)
            return got

        # B's name on A's node and pool: denied once the policy is loaded
        attempt = iter(range(10_000))

        def squatting_denied():
            name = slice_name(node_b, driver, next(attempt))
            try:
                create(a, name, node_a)
            except KubeError as e:
                return e if e.status == 403 and "may name its ResourceSlices" in e.message \
                    else None
            api.delete("resource.k8s.io/v1", "ResourceSlice", name)
            made.remove(name)
            return None
        err = api.wait_for(squatting_denied, timeout=30, what="the VAP to deny a squatted name")
        print("squatted name:", err.message)
        assert f"only {node_a}-{driver.replace('.', '-')}-<index>" in err.message
        msg = _denied(lambda: create(a, slice_name(node_a, driver, 0), node_a, pool=node_b)).message
        assert f"may publish only pool {node_a}, not {node_b}" in msg, msg
        msg = _denied(lambda: create(a, f"{tag}-free-name", node_a)).message
        assert "may name its ResourceSlices only" in msg, msg
        # A's own names and pool; its slice cannot move to B's pool (the API or the policy)
        own = create(a, slice_name(node_a, driver, 0), node_a)
        create(a, slice_name(node_a, driver, 12), node_a)
        own["spec"]["pool"]["name"] = node_b
        with pytest.raises(KubeError):
            a.request("PUT", f"{slices}/{own['metadata']['name']}", own)
        # B's own pod still publishes B's names
        for index in (0, 1):
            create(b, slice_name(node_b, driver, index), node_b)
        _denied(lambda: create(a, long_name, node_a))
        # a name cut and hashed (the hash cannot be checked, the rest can)
        create(long, long_name, long_node)
        forged = base[:-1] + "-" + "0" * 10 + "-4"
        msg = _denied(lambda: create(long, forged, long_node)).message
        assert "may name its ResourceSlices only" in msg, msg
        # a slice of A's node under another name (made before the policy, say): A may delete it
        api.create(_slice(f"{tag}-old", driver, node_a))
        made.append(f"{tag}-old")
        a.request("DELETE", f"{slices}/{tag}-old")
        made.remove(f"{tag}-old")
    finally:
        _remove(cluster, api, objs, made, (node_a, node_b))
        api.delete("v1", "Node", long_node)
