"""`simulation.enabled`: the chart serves simulated devices on every node without the kernel
module. What it renders, what it refuses, and that the init container's own command line builds a
per-node tree whose CDI specs bind-mount the simulated /dev file instead of naming a device node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.cli import build_parser
from mock_accel.sim import SimConfig, SimNode, main, node_identity

from .chart import CHART, container, daemonset, find, helm, host_mounts, render, render_error

SIM = ("simulation.enabled=true",)
HOST_DIR = "/var/lib/mock-accel/sim"


def init_container(objs):
    inits = daemonset(objs, "node-agent")["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in inits] == ["node-dirs", "simulate"]  # the tree is the agent's
    return inits[1]


def test_lint_strict():
    out = helm("lint", "--strict", str(CHART), "--set", SIM[0]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_renders_no_kernel_module_objects():
    objs = render(*SIM)
    assert not find(objs, "Module")
    assert not [o for o in objs if o["kind"] == "ConfigMap" and "kmod" in o["metadata"]["name"]]
    assert [c["name"] for c in daemonset(render(), "node-agent")["spec"]["template"]["spec"][
        "initContainers"]] == ["node-dirs"]


def test_daemonsets_serve_the_simulated_tree():
    objs = render(*SIM)
    for component in ("controller", "node-agent"):
        paths = {m: p for m, (p, _, _) in host_mounts(daemonset(objs, component)).items()}
        assert paths["/host/sys/class/mock-accel"] == f"{HOST_DIR}/sys/class/mock-accel"
        assert paths["/host/sys/devices"] == f"{HOST_DIR}/sys/devices"
    agent = build_parser().parse_args(container(daemonset(objs, "node-agent"))["args"])
    assert agent.host_root == HOST_DIR  # CDI specs name the node's simulated files
    init = init_container(objs)
    env = {e["name"]: e for e in init["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert {m["mountPath"]: m["name"] for m in init["volumeMounts"]}["/host"] == "sim-root"
    volumes = {v["name"]: v for v in daemonset(objs, "node-agent")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["sim-root"]["hostPath"] == {"path": HOST_DIR, "type": "DirectoryOrCreate"}


def test_tree_volumes_do_not_wait_for_the_tree_the_init_container_builds():
    """A real kubelet checks a hostPath volume's type when it sets up the pod, before any init
    container runs: with `Directory` the tree the init container would build kept both pods in
    ContainerCreating on kind ("hostPath type check failed ... does not exist"). With the
    module, the pods still wait for the class dir the module makes."""
    for values, want in ((SIM, "DirectoryOrCreate"), ((), "Directory")):
        objs = render(*values)
        for component in ("controller", "node-agent"):
            mounts = host_mounts(daemonset(objs, component))
            for mount in ("/host/sys/class/mock-accel", "/host/sys/bus/mock-accel",
                          "/host/sys/devices"):
                assert mounts[mount][2] == want, (values, component, mount)
        assert host_mounts(daemonset(objs, "node-agent"))["/host/dev"][2] == want


def test_node_agent_may_rewrite_the_simulated_dev_files():
    """The simulator rewrites a device's /dev file when its status changes, so preparing a claim
    (the ALLOCATED bit) writes there: with /host/dev read-only the real kubelet's first
    NodePrepareResources on kind failed ("writing '0x2' to mock0/status failed: Read-only file
    system"). A real node's /dev stays read-only."""
    agent = daemonset(render(*SIM), "node-agent")
    assert host_mounts(agent)["/host/dev"][1] is False
    assert host_mounts(daemonset(render(), "node-agent"))["/host/dev"][1] is True


def test_init_container_builds_a_per_node_tree_with_bind_mounted_dev(tmp_path, monkeypatch):
    """Run the rendered init command line itself (its /host is a temporary node directory)."""
    init = init_container(render(*SIM, "simulation.num_devices=2", "simulation.num_vfs=1",
                                 "simulation.total_vfs=2", "kernelModule.firmware.enabled=false"))
    assert init["command"] == ["python3", "-m", "mock_accel.sim"]
    trees = {}
    for node in ("kind-worker", "kind-worker2"):
        host = tmp_path / node
        args = [str(host) if a == "/host" else a for a in init["args"]]
        monkeypatch.setenv("NODE_NAME", node)
        assert main(args) == 0
        assert main(args) == 0  # the pod restarts: the same tree is kept
        trees[node] = SimNode(host)
    inventories = {node: tree.discover() for node, tree in trees.items()}
    a, b = (inventories[n] for n in ("kind-worker", "kind-worker2"))
    assert [d.name for d in a] == ["mock0", "mock0-vf0", "mock1", "mock1-vf0"]
    assert not {d.uuid for d in a} & {d.uuid for d in b}
    assert not {d.pci_address for d in a} & {d.pci_address for d in b}
    assert trees["kind-worker"].config.pci_domain == node_identity("kind-worker")["pci_domain"]
    # the node agent's CDI spec, with the chart's host root: no device node, a bind of the file
    registry = CdiRegistry(tmp_path / "cdi", host_root=HOST_DIR)
    tree = trees["kind-worker"]
    spec = registry.build_spec("uid-1", [registry.device(tree, a["mock0"])])
    edits = spec["devices"][0]["containerEdits"]
    assert "deviceNodes" not in edits
    dev = edits["mounts"][0]
    assert (dev["hostPath"], dev["containerPath"]) == (f"{HOST_DIR}/dev/mock0", "/dev/mock0")
    assert "bind" in dev["options"] and "ro" in dev["options"]
    assert "MOCK_ACCEL_DEVICE=mock0" in spec["containerEdits"]["env"]


@pytest.mark.parametrize("sets,needle", [
    (("simulation.num_devices=-1",), "/simulation/num_devices"),
    (("simulation.num_vfs=-2",), "/simulation/num_vfs"),
    (("simulation.numa_nodes=0",), "/simulation/numa_nodes"),
    (("simulation.total_vfs=65",), "/simulation/total_vfs"),
    (("simulation.memory_size=0",), "/simulation/memory_size"),
    (("simulation.hostDir=relative/dir",), "/simulation/hostDir"),
    (("simulation.enabled=yes",), "want boolean"),
    (("simulation.num_device=2",), "num_device"),
])
def test_schema_refuses_nonsense(sets, needle):
    msg = render_error(*SIM, *sets)
    assert "values don't meet the specifications of the schema" in msg, msg
    assert needle in msg, msg


def test_templates_refuse_inconsistent_simulation():
    msg = render_error(*SIM, "simulation.num_vfs=5")
    assert "simulation.num_vfs=5 is above simulation.total_vfs=4" in msg, msg
    msg = render_error(*SIM, "kernelModule.enabled=true")
    assert "exclude each other" in msg, msg
    assert render_error(*SIM, "simulation.total_vfs=2", "simulation.num_vfs=3")
    render(*SIM, "simulation.total_vfs=2", "simulation.num_vfs=2")  # at the total: fine


# ------------------------------------------------------------------------------ two nodes, for real

def _local_values(tag: str) -> dict:
    """Simulation values whose names (driver, classes, namespace, nodes) are this test's own."""
    driver = f"{tag}.example.com"   # short: the container roots' socket paths must fit
    return {"namespace": {"name": f"ns-{tag}"},
            "draDriver": {"name": driver, "nodeSelector": {"mock-accel-test": tag},
                          "nodeAgent": {"pluginSocket": f"/var/lib/kubelet/plugins/{driver}"}},
            "simulation": {"enabled": True, "num_devices": 2, "total_vfs": 1, "num_vfs": 1},
            "kernelModule": {"firmware": {"enabled": False}},
            "deviceClasses": [{"name": f"{tag}-pf", "enabled": True, "deviceType": "pf",
                               "cel": ""},
                              {"name": f"{tag}-vf", "enabled": True, "deviceType": "vf",
                               "cel": ""}]}


@pytest.mark.cluster
def test_two_nodes_start_and_pass_their_probes(cluster, api, tmp_path):
    """Issue 15 item 4: the chart's DaemonSet pods of two nodes run side by side as processes
    of the local chart runner (each pod's --health-port on its own host port), and the probes
    the kubelet would run — gRPC health Check on the node agent, GET /healthz and /readyz on
    the controller — pass; a stopped node agent fails its liveness probe."""
    from mock_accel import localnodes
    from mock_accel.wait import wait_until

    tag = f"ln{uuid.uuid4().hex[:6]}"
    values = _local_values(tag)
    driver = values["draDriver"]["name"]
    nodes = cluster.create_nodes(2, prefix=tag, labels={"mock-accel-test": tag})
    objects = localnodes.helm_template(tag, f"ns-{tag}", values, workdir=tmp_path / "helm")
    install = localnodes.LocalInstall(str(cluster.kubeconfig), f"ns-{tag}", driver,
                                      str(tmp_path / "nodes"), str(tmp_path / "install.json"))
    try:
        localnodes.apply_objects(str(cluster.kubeconfig), objects)
        install.add_nodes({"nodes": nodes, "node_kubeconfigs": {
            n: str(cluster.nodes[n].kubeconfig) for n in nodes}}, sim_dir=HOST_DIR)
        pods = install.daemonset_pods([o for o in objects if o["kind"] == "DaemonSet"])
        assert len(pods) == 4
        for pod in sorted(pods, key=lambda p: not p["spec"].get("initContainers")):
            install.start_pod(pod, tmp_path / "logs")
        for pod in pods:
            install.mark_ready(pod)   # waits for the liveness and readiness probes to pass
        running = [p for p in install.processes if install.alive(p)]
        assert sorted((p.node, p.container) for p in running) == sorted(
            (n, c) for n in nodes for c in ("controller", "node-agent"))
        ports = {(p.node, p.container): p.ports for p in running}
        assert len({port for mapped in ports.values() for port in mapped.values()}) == 4
        assert all(set(mapped) in ({"8081"}, {"9410"}) for mapped in ports.values()), ports
        for pod in pods:
            for kind in ("livenessProbe", "readinessProbe"):
                assert install.probe_pod(pod, kind) == {
                    pod["spec"]["containers"][0]["name"]: ""}, (kind, pod["metadata"]["name"])
        # both nodes publish (the controllers' /readyz says so, the API agrees)
        published = wait_until(lambda: {s["spec"]["nodeName"] for s in api.list(
            "resource.k8s.io/v1", "ResourceSlice") if s["spec"]["driver"] == driver} >= set(nodes)
            or None, 30, "both nodes' slices")
        assert published
        # a hung node agent (stopped) fails the liveness probe the kubelet would act on
        agent = next(p for p in running if p.container == "node-agent")
        pod = next(p for p in pods if p["metadata"]["uid"] == agent.pod_uid)
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            why = install.probe_pod(pod, "livenessProbe")["node-agent"]
            assert "DEADLINE_EXCEEDED" in why, why
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        assert wait_until(lambda: install.probe_pod(pod, "livenessProbe") == {"node-agent": ""},
                          30, "the agent to answer again")
    finally:
        install.stop()
        for obj in objects:
            if not obj["metadata"].get("namespace") and obj["kind"] != "Namespace":
                api.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        api.delete("v1", "Namespace", f"ns-{tag}")
        for node in nodes:
            cluster.delete_node(node)


def test_an_admin_with_three_capabilities_writes_the_agents_tree(tmp_path):
    """The tree is the node agent's (uid 65532, `node-dirs`); a root admin with CAP_SYS_ADMIN,
    CAP_DAC_OVERRIDE and CAP_CHOWN only (nbs/e2e/91's admin pod on kind) injects and clears a
    fault through the simulator, and every file it rewrote is still the agent's, mode kept."""
    root = tmp_path / "tree"
    SimNode.create(root, SimConfig(num_devices=2))
    for directory, dirs, files in os.walk(root):
        for name in [directory, *(os.path.join(directory, n) for n in dirs + files)]:
            os.chown(name, 65532, 65532, follow_symlinks=False)
    caps = "-all,+sys_admin,+dac_override,+chown"
    code = (f"from mock_accel.inventory import open_node; n = open_node({str(root)!r}); "
            "n.inject_fault('mock1', True); n.inject_fault('mock1', False)")
    done = subprocess.run(["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    node = SimNode(root)
    for path, mode in [(node.attribute_path("mock1", "status"), 0o644),
                       (node.attribute_path("mock1", "health"), 0o644),
                       (node.dev_path("mock1"), 0o600)]:
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65532, 65532, mode), path
