"""`helm lint --strict` and `helm template` of chart/: the objects each mode and each of the seed's
example command lines produce, and the values the schema and the templates refuse."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from mock_accel.cli import build_parser
from mock_accel.demo import device_classes
from tools import chartdoc

from .chart import (
    CHART,
    WORDLIST,
    container,
    daemonset,
    find,
    helm,
    host_mounts,
    inlined_files,
    kmod_sources,
    one,
    render,
    render_error,
)

DRIVER = "mock-accel.example.com"
MODES = {"default": (), "prebuilt": ("kernelModule.enabled=true",),
         "build": ("kernelModule.enabled=true", "kernelModule.mode=build")}


def module(objs):
    return one(objs, "Module")


def mappings(objs):
    return module(objs)["spec"]["moduleLoader"]["container"]["kernelMappings"]


# ------------------------------------------------------------------------------ lint + values

@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_strict(mode):
    args = ["lint", "--strict", str(CHART)]
    for s in MODES[mode]:
        args += ["--set", s]
    out = helm(*args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_values_use_the_seed_names_and_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    d, km = values["draDriver"], values["kernelModule"]
    assert values["global"]["imagePullSecrets"] == []
    assert values["namespace"] == {**values["namespace"], "create": True, "name": "mock-device"}
    assert d["name"] == DRIVER
    for comp in ("controller", "nodeAgent"):
        assert d[comp]["enabled"] is True and d[comp]["verbosity"] == 5
        assert d[comp]["image"] == {"repository": "localhost/mock-accel/dra-driver",
                                    "tag": "", "digest": "", "pullPolicy": "IfNotPresent"}
        assert set(d[comp]["resources"]) == {"requests", "limits"}
    assert d["controller"]["rescanInterval"] == "30s"
    assert d["nodeAgent"]["pluginSocket"] == f"/var/lib/kubelet/plugins/{DRIVER}"
    assert (km["enabled"], km["moduleName"], km["mode"]) == (False, "mock-accel", "prebuilt")
    assert km["image"]["repository"] == "localhost/mock-accel/module"
    assert (km["image"]["tag"], km["image"]["digest"]) == ("", "")
    assert km["firmware"]["enabled"] is True
    assert km["firmware"]["configMapName"] == "mock-accel-firmware"
    assert km["build"]["dockerfile"]["configMapEnabled"] is True
    assert km["build"]["kernelMappings"] == [{"regexp": "^.*$"}]
    assert [(c["name"], c["enabled"]) for c in values["deviceClasses"]] == [
        ("mock-accel-pf", True), ("mock-accel-vf", True)]
    assert values["rbac"]["create"] is True
    assert values["serviceAccount"]["create"] is True
    assert values["serviceAccount"]["annotations"] == {}


def test_every_values_key_is_in_the_schema():
    """The docs table is generated from values.yaml + the schema: the schema has every key,
    with a description."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(value, node, path):
        if isinstance(value, dict) and node.get("type") == "object" and "properties" in node:
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                assert node["properties"][key].get("description"), f"{path}.{key}: no description"
                walk(sub, node["properties"][key], f"{path}.{key}")
    walk(values, schema, "")


# The parameters the seed chart's README lists: ours must all be in the generated table.
SEED_PARAMETERS = (
    "global.imagePullSecrets", "namespace.create", "namespace.name", "draDriver.name",
    "draDriver.controller.enabled", "draDriver.controller.image.repository",
    "draDriver.controller.image.tag", "draDriver.controller.image.pullPolicy",
    "draDriver.controller.rescanInterval", "draDriver.controller.verbosity",
    "draDriver.controller.resources", "draDriver.nodeAgent.enabled",
    "draDriver.nodeAgent.image.repository", "draDriver.nodeAgent.image.tag",
    "draDriver.nodeAgent.verbosity", "draDriver.nodeAgent.pluginSocket",
    "draDriver.nodeAgent.resources", "kernelModule.enabled", "kernelModule.moduleName",
    "kernelModule.image.repository", "kernelModule.image.tag", "kernelModule.kernelMappings",
    "kernelModule.firmware.enabled", "kernelModule.firmware.configMapName",
    "deviceClasses[0].name", "deviceClasses[0].enabled", "deviceClasses[1].name",
    "deviceClasses[1].enabled", "rbac.create", "serviceAccount.create",
    "serviceAccount.annotations")


def test_readme_parameter_table_is_generated_and_current(tmp_path, capsys):
    """Issue 15 item 8: chart/README.md's table is what tools.chartdoc (also the docs page's
    generator) makes of values.yaml + values.schema.json; a drifted table fails --check."""
    assert chartdoc.main(["--check"]) == 0, capsys.readouterr().err
    copy = tmp_path / "chart"
    copy.mkdir()
    for name in ("values.yaml", "values.schema.json", "README.md"):
        (copy / name).write_text((CHART / name).read_text())
    values = copy / "values.yaml"
    values.write_text(values.read_text().replace("rescanInterval: 30s", "rescanInterval: 45s"))
    assert chartdoc.main(["--check", "--chart", str(copy)]) == 1
    assert "parameter table is out of date" in capsys.readouterr().err
    assert chartdoc.main(["--chart", str(copy)]) == 0
    assert chartdoc.main(["--check", "--chart", str(copy)]) == 0
    assert "`\"45s\"`" in (copy / "README.md").read_text()
    (copy / "README.md").write_text("# no markers\n")
    assert chartdoc.main(["--chart", str(copy)]) == 1
    assert "needs one" in capsys.readouterr().err


def test_readme_table_covers_every_parameter_and_the_seeds():
    rows, table = chartdoc.parameter_table(CHART)
    documented = {r["parameter"] for r in rows}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = []

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else key)
        elif isinstance(value, list) and value and isinstance(value[0], dict) and \
                path == "deviceClasses":
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif path not in documented:
            missing.append(path)
    walk(values, "")
    assert not missing, f"not in the generated table: {missing}"
    assert not [p for p in SEED_PARAMETERS if p not in documented]
    assert table in (CHART / "README.md").read_text()


# ------------------------------------------------------------------------------ defaults

def test_default_objects():
    objs = render()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    assert kinds == sorted([
        ("Namespace", "mock-device"),
        ("ServiceAccount", "mock-device-controller"), ("ServiceAccount", "mock-device-node-agent"),
        ("ClusterRole", "mock-device-controller"), ("ClusterRole", "mock-device-node-agent"),
        ("ClusterRoleBinding", "mock-device-controller"),
        ("ClusterRoleBinding", "mock-device-node-agent"),
        ("ValidatingAdmissionPolicy", "mock-device-own-node-slices"),
        ("ValidatingAdmissionPolicyBinding", "mock-device-own-node-slices"),
        ("DaemonSet", "mock-device-controller"), ("DaemonSet", "mock-device-node-agent"),
        ("DeviceClass", "mock-accel-pf"), ("DeviceClass", "mock-accel-vf"),
        ("ConfigMap", "mock-accel-firmware")]), kinds
    for o in objs:
        if o["kind"] in ("ServiceAccount", "DaemonSet", "ConfigMap"):
            assert o["metadata"]["namespace"] == "mock-device", o["metadata"]
    ns = one(objs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


# The DaemonSets' selectors as they have always been: a selector is immutable, so a changed one
# breaks `helm upgrade` of every existing release.
SELECTORS = {"controller": {"app.kubernetes.io/instance": "rel", "app": "mock-accel-controller"},
             "node-agent": {"app.kubernetes.io/instance": "rel", "app": "mock-accel-node-agent"}}
COMPONENTS = {"Namespace": {"namespace"}, "ServiceAccount": {"controller", "node-agent"},
              "ClusterRole": {"controller", "node-agent"},
              "ClusterRoleBinding": {"controller", "node-agent"},
              "ValidatingAdmissionPolicy": {"admission-policy"},
              "ValidatingAdmissionPolicyBinding": {"admission-policy"},
              "DaemonSet": {"controller", "node-agent"}, "DeviceClass": {"device-classes"},
              "ConfigMap": {"firmware", "kernel-module"}, "Module": {"kernel-module"}}


@pytest.mark.parametrize("mode", [*MODES, "simulation"])
def test_every_object_carries_the_release_labels_and_selectors_stay(mode):
    """Issue 15 item 8: the app.kubernetes.io/* labels of the release on every object (and on
    the pods), the DaemonSets' selectors unchanged."""
    sets = ("simulation.enabled=true",) if mode == "simulation" else MODES[mode]
    objs = render(*sets, release="rel")
    app_version = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
    release = {"app.kubernetes.io/name": "mock-device", "app.kubernetes.io/instance": "rel",
               "app.kubernetes.io/version": app_version, "app.kubernetes.io/managed-by": "Helm",
               "app.kubernetes.io/part-of": "mock-accel"}
    labelled = [(o, o["metadata"]) for o in objs] + [
        (o, o["spec"]["template"]["metadata"]) for o in find(objs, "DaemonSet")]
    for obj, meta in labelled:
        labels = meta.get("labels") or {}
        assert labels.items() >= release.items(), (obj["kind"], meta.get("name"), labels)
        assert labels["app.kubernetes.io/component"] in COMPONENTS[obj["kind"]], labels
    for component, selector in SELECTORS.items():
        ds = daemonset(objs, component)
        assert ds["spec"]["selector"] == {"matchLabels": selector}
        pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        assert pod_labels.items() >= selector.items()
        assert pod_labels["app.kubernetes.io/component"] == component


def test_daemonsets_run_the_cli_with_flags_it_accepts():
    objs = render()
    parser = build_parser()
    ctrl, agent = container(daemonset(objs, "controller")), container(daemonset(objs, "node-agent"))
    c = parser.parse_args(ctrl["args"])
    assert (c.command, c.driver_name, c.rescan_interval, c.verbosity) == (
        "controller", DRIVER, "30s", 5)
    assert not c.cleanup_stale_nodes  # it would delete other nodes' slices: the VAP forbids it
    a = parser.parse_args(agent["args"])
    assert (a.command, a.driver_name, a.verbosity) == ("node-agent", DRIVER, 5)
    assert a.plugin_socket_dir == f"/var/lib/kubelet/plugins/{DRIVER}"
    assert (a.registry_dir, a.cdi_dir) == (f"/var/lib/kubelet/plugins_registry/{DRIVER}",
                                           "/var/run/cdi")
    for cont in (ctrl, agent):
        env = {e["name"]: e for e in cont["env"]}
        assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    env = {e["name"]: e for e in agent["env"]}
    assert env["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    # The sysfs root the CLI reads is where the class dir and the device tree are mounted.
    for cont, args in ((ctrl, c), (agent, a)):
        mounts = {m["mountPath"] for m in cont["volumeMounts"]}
        root = args.sysfs_root.rstrip("/")
        assert {f"{root}/sys/class/mock-accel", f"{root}/sys/bus/mock-accel",
                f"{root}/sys/devices"} <= mounts
    # CDI specs carry the node's paths: --host-root is the chart's hostRoot.
    assert a.host_root == "/"


def _probe_port(cont: dict, probe: dict) -> int:
    """The container port a probe calls (`grpc.port`, or `httpGet.port` by number or name)."""
    port = (probe.get("grpc") or probe["httpGet"])["port"]
    if isinstance(port, str):
        (port,) = [p["containerPort"] for p in cont["ports"] if p["name"] == port]
    return port


def test_probes_call_the_health_services_the_commands_serve():
    """Issue 15 item 4: gRPC probes on the node agent's health service, HTTP probes on the
    controller's /healthz and /readyz, each on the port the command is told to serve."""
    objs = render()
    parser = build_parser()
    ctrl, agent = container(daemonset(objs, "controller")), container(daemonset(objs, "node-agent"))
    for cont, port in ((ctrl, 8081), (agent, 9410)):
        assert parser.parse_args(cont["args"]).health_port == port
        assert cont["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
        for kind in ("livenessProbe", "readinessProbe"):
            assert _probe_port(cont, cont[kind]) == port, (kind, cont[kind])
            assert "exec" not in cont[kind]
    assert agent["livenessProbe"] == {"grpc": {"port": 9410}, "periodSeconds": 10,
                                      "timeoutSeconds": 5, "failureThreshold": 3}
    assert agent["readinessProbe"] == {"grpc": {"port": 9410}, "periodSeconds": 5,
                                       "timeoutSeconds": 5, "failureThreshold": 3}
    assert ctrl["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ctrl["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The plugin's check may wait 2 s for the claims lock: the probe gives it more.
    assert agent["livenessProbe"]["timeoutSeconds"] > 2


def test_probe_ports_and_timings_come_from_values():
    objs = render("draDriver.nodeAgent.healthPort=9000", "draDriver.controller.healthPort=9001",
                  "draDriver.nodeAgent.livenessProbe.failureThreshold=6",
                  "draDriver.nodeAgent.livenessProbe.initialDelaySeconds=20",
                  "draDriver.controller.readinessProbe.periodSeconds=30")
    ctrl, agent = container(daemonset(objs, "controller")), container(daemonset(objs, "node-agent"))
    assert "--health-port=9000" in agent["args"] and "--health-port=9001" in ctrl["args"]
    assert agent["readinessProbe"]["grpc"] == {"port": 9000}
    assert agent["livenessProbe"] == {"grpc": {"port": 9000}, "periodSeconds": 10,
                                      "timeoutSeconds": 5, "failureThreshold": 6,
                                      "initialDelaySeconds": 20}
    assert ctrl["ports"][0]["containerPort"] == 9001
    assert ctrl["readinessProbe"]["periodSeconds"] == 30
    # null drops a default timing; the probe itself stays
    agent = container(daemonset(render("draDriver.nodeAgent.readinessProbe=null"), "node-agent"))
    assert agent["readinessProbe"] == {"grpc": {"port": 9410}}


def test_host_paths_and_privileges():
    objs = render()
    ctrl, agent = daemonset(objs, "controller"), daemonset(objs, "node-agent")
    assert host_mounts(ctrl) == {
        "/host/sys/class/mock-accel": ("/sys/class/mock-accel", True, "Directory"),
        "/host/sys/bus/mock-accel": ("/sys/bus/mock-accel", True, "Directory"),
        "/host/sys/devices": ("/sys/devices", True, "Directory")}
    assert host_mounts(agent) == {
        "/host/sys/class/mock-accel": ("/sys/class/mock-accel", True, "Directory"),
        "/host/sys/bus/mock-accel": ("/sys/bus/mock-accel", True, "Directory"),
        "/host/sys/devices": ("/sys/devices", False, "Directory"),  # status writes
        "/host/dev": ("/dev", True, "Directory"),
        PLUGIN_DIR: (PLUGIN_DIR, False, "DirectoryOrCreate"),
        REGISTRY_DIR: (REGISTRY_DIR, False, "DirectoryOrCreate"),
        "/var/run/cdi": ("/var/run/cdi", False, "DirectoryOrCreate")}
    for ds in (ctrl, agent):
        pod = ds["spec"]["template"]["spec"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container(ds)["securityContext"]
        assert not sc.get("privileged") and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
        assert not pod.get("hostNetwork") and not pod.get("hostPID")
    for ds in (ctrl, agent):
        sc = container(ds)["securityContext"]
        assert (sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"]) == (True, 65532, 65532)


PLUGIN_DIR = f"/var/lib/kubelet/plugins/{DRIVER}"
REGISTRY_DIR = f"/var/lib/kubelet/plugins_registry/{DRIVER}"
# The node agent's writable host paths in each mode and what it writes there (issue 17 item 3).
AGENT_WRITABLE = {
    "module": {"/host/sys/devices": "/sys/devices",  # status (issue 17 item 1 narrows it)
               PLUGIN_DIR: PLUGIN_DIR, REGISTRY_DIR: REGISTRY_DIR, "/var/run/cdi": "/var/run/cdi"},
    "simulation": {"/host/sys/devices": "/var/lib/mock-accel/sim/sys/devices",
                   "/host/dev": "/var/lib/mock-accel/sim/dev",  # the simulator rewrites /dev files
                   PLUGIN_DIR: PLUGIN_DIR, REGISTRY_DIR: REGISTRY_DIR,
                   "/var/run/cdi": "/var/run/cdi"}}


@pytest.mark.parametrize("mode", AGENT_WRITABLE)
def test_node_agent_writes_only_its_own_host_paths(mode):
    """Only the driver's own socket and registration directories (not the kubelet's plugins
    directory with other drivers' and CSI sockets, nor all of plugins_registry), the device
    tree's status files and the CDI specs are writable; everything else is read-only, and the
    CLI is told the directories it has."""
    objs = render(*(("simulation.enabled=true",) if mode == "simulation" else ()))
    agent = daemonset(objs, "node-agent")
    writable = {m: p for m, (p, ro, _) in host_mounts(agent).items() if not ro}
    assert writable == AGENT_WRITABLE[mode]
    assert not [m for m in host_mounts(agent) if m.rstrip("/") in (
        "/var/lib/kubelet", "/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry")]
    args = build_parser().parse_args(container(agent)["args"])
    assert (args.plugin_socket_dir, args.registry_dir) == (PLUGIN_DIR, REGISTRY_DIR)
    # another driver name moves both directories along
    kubelet = "/var/lib/kubelet"
    other = daemonset(render("draDriver.name=x.example.org",
                             f"draDriver.nodeAgent.pluginSocket={kubelet}/plugins/x.example.org"),
                      "node-agent")
    assert {f"{kubelet}/plugins/x.example.org", f"{kubelet}/plugins_registry/x.example.org"} \
        <= set(host_mounts(other))


STATUS_GID = 64321  # values.yaml: kernelModule.parameters.status_gid


def init_containers(ds) -> dict[str, dict]:
    return {c["name"]: c for c in ds["spec"]["template"]["spec"].get("initContainers", [])}


@pytest.mark.parametrize("mode", ["module", "simulation", "prebuilt"])
def test_node_agent_runs_as_non_root_in_the_status_group(mode):
    """Issue 17 item 1: uid 65532, no capabilities, the module's `status_gid` as its only
    extra group (the module and the pod get the same value); the `node-dirs` init container,
    root with CAP_CHOWN alone, gives it its kubelet directories (and the simulated tree) and
    an ACL entry on /var/run/cdi; the simulator's init container runs as the agent."""
    sets = {"module": (), "simulation": ("simulation.enabled=true",),
            "prebuilt": MODES["prebuilt"]}[mode]
    objs = render(*sets)
    agent = daemonset(objs, "node-agent")
    pod = agent["spec"]["template"]["spec"]
    sc = container(agent)["securityContext"]
    assert (sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"]) == (True, 65532, 65532)
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["supplementalGroups"] == [STATUS_GID]
    if mode == "prebuilt":
        params = module(objs)["spec"]["moduleLoader"]["container"]["modprobe"]["parameters"]
        assert f"status_gid={STATUS_GID}" in params
    inits = init_containers(agent)
    assert list(inits) == ["node-dirs", "simulate"][:1 + (mode == "simulation")]
    dirs = inits["node-dirs"]
    assert dirs["securityContext"] == {
        "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}
    assert dirs["command"] == ["python3", "-c", (CHART / "files" / "node-dirs.py").read_text()]
    owned = [PLUGIN_DIR, REGISTRY_DIR] + (["/host"] if mode == "simulation" else [])
    assert dirs["args"] == ["65532", "65532", "/var/run/cdi", *owned]
    mounts = {m["mountPath"]: m["name"] for m in dirs["volumeMounts"]}
    assert set(mounts) == {"/var/run/cdi", *owned} and not any(
        m.get("readOnly") for m in dirs["volumeMounts"])
    if mode == "simulation":
        assert inits["simulate"]["securityContext"] == sc  # builds the tree as its owner
    # no read-write hostPath under /sys but the device tree's, whose `status` files are the
    # only ones the group may write on a module node (kmod/ABI.md, tests/kernel/guest)
    assert [m for m, (p, ro, _) in host_mounts(agent).items()
            if p.startswith("/sys") and not ro] == ([] if mode == "simulation"
                                                    else ["/host/sys/devices"])


def test_node_agent_as_root_or_without_a_status_group():
    """`runAsUser: 0` needs no `node-dirs`; `status_gid: null` gives the pod no extra group."""
    agent = daemonset(render("draDriver.nodeAgent.securityContext.runAsUser=0",
                             "draDriver.nodeAgent.securityContext.runAsNonRoot=false",
                             "kernelModule.parameters.status_gid=null"), "node-agent")
    assert "initContainers" not in agent["spec"]["template"]["spec"]
    assert "supplementalGroups" not in agent["spec"]["template"]["spec"]["securityContext"]
    sim = daemonset(render("simulation.enabled=true",
                           "draDriver.nodeAgent.securityContext.runAsUser=0"), "node-agent")
    assert list(init_containers(sim)) == ["simulate"]
    assert "at '/kernelModule/parameters/status_gid': maximum" in render_error(
        "kernelModule.parameters.status_gid=2147483648")


def test_privileged_node_agent_for_selinux_hosts():
    """The README's recipe: both keys merge into the defaults, nothing else changes."""
    objs = render("draDriver.nodeAgent.securityContext.privileged=true",
                  "draDriver.nodeAgent.securityContext.allowPrivilegeEscalation=true")
    sc = container(daemonset(objs, "node-agent"))["securityContext"]
    assert sc["privileged"] is True and sc["allowPrivilegeEscalation"] is True
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert not container(daemonset(objs, "controller"))["securityContext"].get("privileged")


def test_update_strategies():
    objs = render()
    agent = daemonset(objs, "node-agent")["spec"]["updateStrategy"]
    assert agent == {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    ctrl = daemonset(objs, "controller")["spec"]["updateStrategy"]
    assert ctrl["type"] == "RollingUpdate" and ctrl["rollingUpdate"]["maxUnavailable"] == 1


def test_each_component_uses_its_own_image():
    objs = render("draDriver.controller.image.repository=reg.example/ctrl",
                  "draDriver.controller.image.tag=c1",
                  "draDriver.controller.image.pullPolicy=Always",
                  "draDriver.nodeAgent.image.repository=reg.example/agent",
                  "draDriver.nodeAgent.image.tag=a1")
    ctrl, agent = container(daemonset(objs, "controller")), container(daemonset(objs, "node-agent"))
    assert (ctrl["image"], ctrl["imagePullPolicy"]) == ("reg.example/ctrl:c1", "Always")
    assert (agent["image"], agent["imagePullPolicy"]) == ("reg.example/agent:a1", "IfNotPresent")
    appversion = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    default = container(daemonset(render(), "node-agent"))["image"]
    assert default == f"localhost/mock-accel/dra-driver:{appversion}"


def test_components_can_be_disabled():
    objs = render("draDriver.controller.enabled=false")
    assert [d["metadata"]["name"] for d in find(objs, "DaemonSet")] == ["mock-device-node-agent"]
    assert not find(objs, "ClusterRole", "mock-device-controller")
    objs = render("draDriver.nodeAgent.enabled=false", "deviceClasses[0].name=only-pf",
                  "deviceClasses[0].deviceType=pf", "deviceClasses[0].enabled=true")
    assert [d["metadata"]["name"] for d in find(objs, "DeviceClass")] == ["only-pf"]
    assert [d["metadata"]["name"] for d in find(objs, "DaemonSet")] == ["mock-device-controller"]
    objs = render("rbac.create=false", "serviceAccount.create=false", "namespace.create=false")
    assert not {"ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Namespace",
                "ValidatingAdmissionPolicy"} & {o["kind"] for o in objs}
    for comp in ("controller", "node-agent"):
        assert daemonset(objs, comp)["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_global_pull_secrets_and_scheduling():
    objs = render("global.imagePullSecrets[0]=regcred", "global.imagePullSecrets[1].name=other",
                  "draDriver.nodeSelector.accel=yes", "draDriver.tolerations[0].operator=Exists")
    for comp in ("controller", "node-agent"):
        pod = daemonset(objs, comp)["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
        assert pod["nodeSelector"] == {"accel": "yes"}
        assert pod["tolerations"] == [{"operator": "Exists"}]
        assert "affinity" not in pod


# ------------------------------------------------------------------------------ RBAC + VAP

def test_rbac_is_least_privilege():
    objs = render()
    rules = {o["metadata"]["name"]: o["rules"] for o in find(objs, "ClusterRole")}
    for name, rs in rules.items():
        for r in rs:
            assert "*" not in r["verbs"] and "*" not in r["resources"], (name, r)
            assert "*" not in r["apiGroups"], (name, r)
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    assert rules["mock-device-node-agent"] == [
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"],
         "verbs": ["get", "list"]}]  # list: the rebuild of a corrupt checkpoint (nbs/26_claims)
    ctrl = rules["mock-device-controller"]
    written = {res for r in ctrl if writes & set(r["verbs"]) for res in r["resources"]}
    assert written == {"resourceslices"}
    assert {"list", "create", "update", "delete"} <= {
        v for r in ctrl if r["resources"] == ["resourceslices"] for v in r["verbs"]}
    for binding in find(objs, "ClusterRoleBinding"):
        (subject,) = binding["subjects"]
        assert subject["namespace"] == "mock-device"
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]


SA_CASES = {
    "created": ((), {"controller": "rel-controller", "node-agent": "rel-node-agent"}),
    "named": (("serviceAccount.controllerName=pub", "serviceAccount.nodeAgentName=plug"),
              {"controller": "pub", "node-agent": "plug"}),
    "existing-default": (("serviceAccount.create=false",),
                         {"controller": "default", "node-agent": "default"}),
    "other-namespace": (("namespace.name=accel-system",),
                        {"controller": "rel-controller", "node-agent": "rel-node-agent"}),
}


def test_admission_policy_names_slices_as_the_publisher_does():
    """Issue 15 item 9: the policy's name rule is mock_accel.slices.slice_name's (prefix,
    limit, cut); tests/chart/test_cluster.py tries it on the API server."""
    from mock_accel.slices import MAX_OBJECT_NAME, slice_name
    policy = one(render("draDriver.name=acc.example.org",
                        "draDriver.nodeAgent.pluginSocket=/var/lib/kubelet/plugins/acc.example.org"),
                 "ValidatingAdmissionPolicy")
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert variables["namePrefix"] == "variables.tokenNode + '-acc-example-org'"
    assert slice_name("node", "acc.example.org", 7) == "node-acc-example-org-7"
    limit = MAX_OBJECT_NAME - 8           # slice_name's room for the index
    assert f"size(variables.namePrefix) <= {limit}" in variables["nameIsOurs"]
    assert f"substring(0, {limit - 11})" in variables["nameIsOurs"]  # cut, then -<10 hex>
    checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert "object.spec.pool.name == variables.tokenNode" in checks
    assert "variables.nameIsOurs" in checks


@pytest.mark.parametrize("case", SA_CASES)
def test_admission_policy_matches_the_accounts_the_pods_use(case):
    sets, want = SA_CASES[case]
    objs = render(*sets, release="rel")
    ns = "accel-system" if case == "other-namespace" else "mock-device"
    used = set()
    for comp, sa in want.items():
        ds = daemonset(objs, comp)
        assert ds["spec"]["template"]["spec"]["serviceAccountName"] == sa
        assert ds["metadata"]["namespace"] == ns
        used.add(f"system:serviceaccount:{ns}:{sa}")
    vap = one(objs, "ValidatingAdmissionPolicy")
    (cond,) = vap["spec"]["matchConditions"]
    m = re.fullmatch(r"request\.userInfo\.username in (\[.*\])", cond["expression"].strip())
    assert m, cond
    assert set(json.loads(m.group(1))) == used
    for binding in find(objs, "ClusterRoleBinding"):
        assert binding["subjects"][0]["namespace"] == ns
    vapb = one(objs, "ValidatingAdmissionPolicyBinding")
    assert vapb["spec"] == {"policyName": vap["metadata"]["name"], "validationActions": ["Deny"]}
    rules = vap["spec"]["matchConstraints"]["resourceRules"]
    assert rules == [{"apiGroups": ["resource.k8s.io"], "apiVersions": ["*"],
                      "operations": ["CREATE", "UPDATE", "DELETE"],
                      "resources": ["resourceslices"]}]


# ------------------------------------------------------------------------------ DeviceClasses

def _cel(dc):
    (sel,) = dc["spec"]["selectors"]
    return " ".join(sel["cel"]["expression"].split())


@pytest.mark.parametrize("driver", [DRIVER, "accel.test.example.org"])
def test_device_classes_match_the_demo(driver):
    sets = () if driver == DRIVER else (f"draDriver.name={driver}",
                                        f"draDriver.nodeAgent.pluginSocket=/var/lib/kubelet/"
                                        f"plugins/{driver}")
    objs = render(*sets)
    got = {dc["metadata"]["name"]: _cel(dc) for dc in find(objs, "DeviceClass")}
    want = {dc["metadata"]["name"]: _cel(dc) for dc in device_classes(driver)}
    assert got == want
    assert all(f'device.driver == "{driver}"' in e for e in got.values())


def test_device_class_extra_cel_and_disable():
    objs = render("deviceClasses[0].name=big-pf", "deviceClasses[0].deviceType=pf",
                  "deviceClasses[0].enabled=true",
                  "deviceClasses[0].cel=device.capacity[\"" + DRIVER + "\"].memory.compareTo("
                  "quantity(\"8Gi\")) >= 0",
                  "deviceClasses[1].name=off", "deviceClasses[1].deviceType=vf",
                  "deviceClasses[1].enabled=false")
    (dc,) = find(objs, "DeviceClass")
    assert dc["metadata"]["name"] == "big-pf"
    assert _cel(dc).endswith('&& (device.capacity["mock-accel.example.com"].memory.compareTo('
                             'quantity("8Gi")) >= 0)')


# ------------------------------------------------------------------------------ KMM Module

def test_prebuilt_module():
    objs = render(*MODES["prebuilt"])
    spec = module(objs)["spec"]
    assert module(objs)["apiVersion"] == "kmm.sigs.x-k8s.io/v1beta1"
    assert module(objs)["metadata"]["namespace"] == "mock-device"
    c = spec["moduleLoader"]["container"]
    assert c["modprobe"]["moduleName"] == "mock-accel"
    assert c["modprobe"]["firmwarePath"] == "/firmware"
    appversion = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert c["kernelMappings"] == [{
        "regexp": "^.+$",
        "containerImage": f"localhost/mock-accel/module:{appversion}-${{KERNEL_FULL_VERSION}}"}]
    assert spec["selector"] == {"kubernetes.io/os": "linux"}
    assert "imageRepoSecret" not in spec
    assert not find(objs, "ConfigMap", "mock-device-kmod-dockerfile")
    # The driver pods go only where KMM reports the module loaded.
    label = "kmm.node.kubernetes.io/mock-device.mock-accel.ready"
    for comp in ("controller", "node-agent"):
        aff = daemonset(objs, comp)["spec"]["template"]["spec"]["affinity"]
        (term,) = aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert term["matchExpressions"] == [{"key": label, "operator": "Exists"}]


def test_module_registry_tls():
    assert "registryTLS" not in module(render(*MODES["prebuilt"]))["spec"]["moduleLoader"][
        "container"]
    objs = render(*MODES["build"], "kernelModule.registryTLS.insecure=true")
    assert module(objs)["spec"]["moduleLoader"]["container"]["registryTLS"] == {"insecure": True}
    objs = render(*MODES["prebuilt"], "kernelModule.registryTLS.insecureSkipTLSVerify=true")
    assert module(objs)["spec"]["moduleLoader"]["container"]["registryTLS"] == {
        "insecureSkipTLSVerify": True}
    assert "registryTLS" in render_error(*MODES["prebuilt"], "kernelModule.registryTLS.verify=no")


def test_module_pull_secret():
    objs = render(*MODES["prebuilt"], "global.imagePullSecrets[0].name=regcred")
    assert module(objs)["spec"]["imageRepoSecret"] == {"name": "regcred"}
    objs = render(*MODES["prebuilt"], "global.imagePullSecrets[0]=regcred",
                  "kernelModule.imageRepoSecret=kmm-only")
    assert module(objs)["spec"]["imageRepoSecret"] == {"name": "kmm-only"}


def test_module_parameters_are_the_modules_own():
    """Every rendered parameter is a module_param of kmod/, with the value asked for."""
    declared = set()
    for src in (CHART.parent / "kmod").glob("*.c"):
        declared |= set(re.findall(r"module_param(?:_named)?\(\s*(\w+)", src.read_text()))
    assert {"num_devices", "numa_nodes", "total_vfs", "num_vfs", "memory_size"} <= declared
    schema = json.loads((CHART / "values.schema.json").read_text())
    offered = schema["properties"]["kernelModule"]["properties"]["parameters"]["properties"]
    assert set(offered) == declared, "the schema offers exactly the module's parameters"
    objs = render(*MODES["prebuilt"], "kernelModule.parameters.num_vfs=2",
                  "kernelModule.parameters.uuid_seed=12345", "kernelModule.parameters.backend=pci",
                  "kernelModule.parameters.dev_mode=null")
    params = module(objs)["spec"]["moduleLoader"]["container"]["modprobe"]["parameters"]
    got = dict(p.split("=", 1) for p in params)
    assert set(got) <= declared, set(got) - declared
    assert got == {"num_devices": "4", "numa_nodes": "2", "total_vfs": "4", "num_vfs": "2",
                   "memory_size": "17179869184", "uuid_seed": "12345", "backend": "pci",
                   "status_gid": "64321"}
    assert "additional properties 'bogus' not allowed" in render_error(
        *MODES["prebuilt"], "kernelModule.parameters.bogus=1")


def test_build_module():
    objs = render(*MODES["build"], "kernelModule.imageRepoSecret=push-creds")
    spec = module(objs)["spec"]
    assert spec["imageRepoSecret"] == {"name": "push-creds"}
    (m,) = mappings(objs)
    assert m["regexp"] == "^.*$"
    assert "${KERNEL_FULL_VERSION}" in m["containerImage"]
    assert m["containerImage"].startswith("localhost/mock-accel/module:")
    assert m["build"]["dockerfileConfigMap"] == {"name": "mock-device-kmod-dockerfile"}
    args = {a["name"]: a["value"] for a in m["build"]["buildArgs"]}
    assert {"FEDORA_IMAGE", "RHEL_IMAGE", "DEBIAN_IMAGE", "UBUNTU_IMAGE", "BASE_IMAGE"} <= set(args)
    cm = one(objs, "ConfigMap", "mock-device-kmod-dockerfile")
    assert list(cm["data"]) == ["dockerfile"]


def test_build_dockerfile_carries_the_sources_and_firmware():
    objs = render(*MODES["build"])
    dockerfile = one(objs, "ConfigMap", "mock-device-kmod-dockerfile")["data"]["dockerfile"]
    files = inlined_files(dockerfile)
    want = {f"/usr/src/mock-accel/{p}": data for p, data in kmod_sources().items()}
    want["/usr/local/bin/build-kmod.sh"] = (CHART.parent / "images/kmod/build-kmod.sh").read_bytes()
    want["/firmware/mock-accel-wordlist.txt"] = WORDLIST.read_bytes()
    assert files == want
    assert "git clone" not in dockerfile and "COPY kmod/" not in dockerfile
    assert re.search(r"^COPY --from=sources /firmware/ /firmware/$", dockerfile, re.M)
    assert re.search(r"depmod -b /opt \"\$\{KERNEL_FULL_VERSION\}\"", dockerfile)
    assert "/opt/lib/modules/${KERNEL_FULL_VERSION}/" in dockerfile
    for line in dockerfile.splitlines():  # each RUN is one `sh -c` argument: < 128 KiB
        assert len(line.encode()) < 128 * 1024


def test_prebuilt_tag_really_changes_the_image():
    """The seed's own example line: the tag must reach the Module."""
    objs = render("kernelModule.enabled=true", "kernelModule.mode=prebuilt",
                  "kernelModule.prebuilt.image.tag=v0.2.0-fc43")
    assert [m["containerImage"] for m in mappings(objs)] == [
        "localhost/mock-accel/module:v0.2.0-fc43"]
    objs = render(*MODES["prebuilt"], "kernelModule.image.repository=reg.example/kmod",
                  "kernelModule.image.tag=${KERNEL_FULL_VERSION}")
    assert [m["containerImage"] for m in mappings(objs)] == [
        "reg.example/kmod:${KERNEL_FULL_VERSION}"]


def test_build_target_names_never_collide():
    objs = render(*MODES["build"], "kernelModule.build.image.repository=reg.example/built",
                  "kernelModule.build.image.tag=v9")
    assert [m["containerImage"] for m in mappings(objs)] == [
        "reg.example/built:v9-${KERNEL_FULL_VERSION}"]


def test_build_mappings_must_keep_kernels_apart():
    maps = [{"regexp": "^.*$", "containerImage": "reg.example/kmod:latest"}]
    msg = render_error(*MODES["build"], set_json={"kernelModule.kernelMappings": json.dumps(maps)})
    assert "${KERNEL_FULL_VERSION}" in msg and "reg.example/kmod:latest" in msg, msg
    maps[0]["containerImage"] = "reg.example/kmod:${KERNEL_FULL_VERSION}"
    objs = render(*MODES["build"], set_json={"kernelModule.kernelMappings": json.dumps(maps)})
    assert mappings(objs)[0]["containerImage"] == "reg.example/kmod:${KERNEL_FULL_VERSION}"


def test_literal_mappings_and_per_mapping_build_args():
    maps = [{"literal": "6.1.0-40-amd64"},
            {"regexp": r"^.*\.el9.*$", "buildArgs": [{"name": "KMOD_DISTRO", "value": "rhel"}]}]
    objs = render(*MODES["build"], set_json={"kernelModule.kernelMappings": json.dumps(maps)})
    got = mappings(objs)
    assert got[0]["literal"] == "6.1.0-40-amd64" and "regexp" not in got[0]
    assert {"name": "KMOD_DISTRO", "value": "rhel"} in got[1]["build"]["buildArgs"]
    assert render_error(*MODES["prebuilt"], set_json={"kernelModule.kernelMappings": json.dumps(
        [{"literal": "a", "regexp": "b"}])})


def test_firmware_configmap_holds_the_built_wordlist():
    objs = render()
    cm = one(objs, "ConfigMap", "mock-accel-firmware")
    words = WORDLIST.read_text()
    assert cm["data"] == {"mock-accel-wordlist.txt": words}
    assert cm["metadata"]["annotations"]["mock-accel.example.com/words"] == str(
        len(words.splitlines()))
    # Another list through --set-file; a malformed one is refused by the schema.
    objs = render("kernelModule.firmware.configMapName=fw", "kernelModule.firmware.wordlist=a\nb\n")
    assert one(objs, "ConfigMap", "fw")["data"]["mock-accel-wordlist.txt"] == "a\nb\n"
    assert "wordlist" in render_error("kernelModule.firmware.wordlist=Not A Word")
    objs = render(*MODES["prebuilt"], "kernelModule.firmware.enabled=false")
    assert not find(objs, "ConfigMap", "mock-accel-firmware")
    assert "firmwarePath" not in module(objs)["spec"]["moduleLoader"]["container"]["modprobe"]


# ------------------------------------------------------------------------------ the seed's lines

SEED_LINES = {
    "standard": "--namespace mock-device",
    "full-kmm-prebuilt": "--set kernelModule.enabled=true --set kernelModule.mode=prebuilt "
                         "--set kernelModule.prebuilt.image.tag=v0.2.0-fc43",
    "in-cluster-build": "--set kernelModule.enabled=true --set kernelModule.mode=build",
    "custom-registry": "--set draDriver.controller.image.repository="
                       "myregistry.io/mock-accel-dra-driver "
                       "--set draDriver.nodeAgent.image.repository="
                       "myregistry.io/mock-accel-dra-driver",
    "minimal": "--set kernelModule.enabled=false",
    "verbosity": "--set kernelModule.enabled=true --set draDriver.controller.verbosity=10 "
                 "--set draDriver.nodeAgent.verbosity=10",
    "multi-distro": "--set kernelModule.enabled=true --set-json 'kernelModule.kernelMappings=["
                    "{\"regexp\":\"^.*\\\\.fc43\\\\.x86_64$\",\"containerImage\":"
                    "\"ghcr.io/fabiendupont/mock-accel-module:v1.0.0-fc43\"},"
                    "{\"regexp\":\"^.*\\\\.fc44\\\\.x86_64$\",\"containerImage\":"
                    "\"ghcr.io/fabiendupont/mock-accel-module:v1.0.0-fc44\"}]'",
}


def _seed_render(name):
    args = ["template", "mock-device", str(CHART), *shlex.split(SEED_LINES[name])]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def test_seed_lines_render_what_they_promise():
    for name in SEED_LINES:
        objs = _seed_render(name)
        kinds = {o["kind"] for o in objs}
        assert {"DaemonSet", "DeviceClass", "ValidatingAdmissionPolicy"} <= kinds, name
        assert ("Module" in kinds) == ("kernelModule.enabled=true" in SEED_LINES[name]), name
    images = {container(d)["image"].rsplit(":", 1)[0]
              for d in find(_seed_render("custom-registry"), "DaemonSet")}
    assert images == {"myregistry.io/mock-accel-dra-driver"}
    for d in find(_seed_render("verbosity"), "DaemonSet"):
        assert "--verbosity=10" in container(d)["args"]
    assert [m["containerImage"] for m in mappings(_seed_render("multi-distro"))] == [
        "ghcr.io/fabiendupont/mock-accel-module:v1.0.0-fc43",
        "ghcr.io/fabiendupont/mock-accel-module:v1.0.0-fc44"]
    assert [m["regexp"] for m in mappings(_seed_render("multi-distro"))] == [
        r"^.*\.fc43\.x86_64$", r"^.*\.fc44\.x86_64$"]
    assert "${KERNEL_FULL_VERSION}" in mappings(_seed_render("in-cluster-build"))[0][
        "containerImage"]
    assert mappings(_seed_render("full-kmm-prebuilt"))[0]["containerImage"].endswith(
        ":v0.2.0-fc43")


# ------------------------------------------------------------------------------ refused values

@pytest.mark.parametrize("sets,needle", [
    (("kernelModule.mode=dkms",), "value must be one of 'prebuilt', 'build'"),
    (("draDriver.controller.verbosity=eleven",), "want integer"),
    (("draDriver.nodeAgent.verbosity=11",), "maximum"),
    (("kernelModule.enabled=yes",), "want boolean"),
    (("draDriver.controller.rescanInterval=soon",), "rescanInterval"),
    (("draDriver.controler.enabled=true",), "controler"),
    (("rbac.create=true", "rbac.extra=1"), "extra"),
    (("draDriver.name=Not_A_Domain",), "/draDriver/name"),
    (("deviceClasses[0].name=x", "deviceClasses[0].deviceType=gpu"), "'pf', 'vf'"),
    (("kernelModule.parameters.numa_nodes=0",), "numa_nodes"),
    (("draDriver.nodeAgent.healthPort=0",), "/draDriver/nodeAgent/healthPort"),
    (("draDriver.controller.healthPort=70000",), "/draDriver/controller/healthPort"),
    (("draDriver.nodeAgent.livenessProbe.successThreshold=2",), "successThreshold"),
    (("draDriver.controller.readinessProbe.periodSeconds=0",), "periodSeconds"),
])
def test_schema_refuses_with_a_clear_message(sets, needle):
    msg = render_error(*sets)
    assert "values don't meet the specifications of the schema" in msg, msg
    assert needle in msg, msg


def test_templates_refuse_inconsistent_values():
    msg = render_error("draDriver.name=other.example.com")
    assert "pluginSocket" in msg and "/var/lib/kubelet/plugins/other.example.com" in msg, msg
    msg = render_error(*MODES["build"], "kernelModule.build.dockerfile.configMapEnabled=false")
    assert "configMapName" in msg, msg
    msg = render_error("deviceClasses[0].name=a", "deviceClasses[0].deviceType=pf",
                       "deviceClasses[1].name=a", "deviceClasses[1].deviceType=vf")
    assert "used twice" in msg, msg
    objs = render(*MODES["build"], "kernelModule.build.dockerfile.configMapEnabled=false",
                  "kernelModule.build.dockerfile.configMapName=mine")
    assert mappings(objs)[0]["build"]["dockerfileConfigMap"] == {"name": "mine"}
    assert not find(objs, "ConfigMap", "mock-device-kmod-dockerfile")
