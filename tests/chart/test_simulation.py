"""`simulation.enabled`: the chart serves simulated devices on every node without the kernel
module. What it renders, what it refuses, and that the init container's own command line builds a
per-node tree whose CDI specs bind-mount the simulated /dev file instead of naming a device node."""

from __future__ import annotations

import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.cli import build_parser
from mock_accel.sim import SimNode, main, node_identity

from .chart import CHART, container, daemonset, find, helm, host_mounts, render, render_error

SIM = ("simulation.enabled=true",)
HOST_DIR = "/var/lib/mock-accel/sim"


def init_container(objs):
    (init,) = daemonset(objs, "node-agent")["spec"]["template"]["spec"]["initContainers"]
    return init


def test_lint_strict():
    out = helm("lint", "--strict", str(CHART), "--set", SIM[0]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_renders_no_kernel_module_objects():
    objs = render(*SIM)
    assert not find(objs, "Module")
    assert not [o for o in objs if o["kind"] == "ConfigMap" and "kmod" in o["metadata"]["name"]]
    assert "initContainers" not in daemonset(render(), "node-agent")["spec"]["template"]["spec"]


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
