"""The real scheduler allocates our published devices; our plugin prepares and frees them."""
from __future__ import annotations

import pytest

from mock_accel.demo import SCENARIO, DemoClaim
from mock_accel.sim import SimConfig
from mock_accel.slices import parse_quantity  # noqa: F401  (import check: the builder is present)
from mock_accel.wait import wait_until

pytestmark = pytest.mark.cluster

PF, VF = "mock-accel-pf", "mock-accel-vf"


def devices_of(demo, claim: str) -> list:
    outcome = demo.outcomes[claim]
    inventory = demo.nodes[outcome.node].sim.discover()
    return [inventory[name] for name in outcome.devices]


def allocated_names(demo) -> set[tuple[str, str]]:
    return {(node_name, d.name) for node_name, node in demo.nodes.items()
            for d in node.sim.discover() if d.allocated}


def test_demo_scenario_end_to_end(driver_demo):
    demo = driver_demo(SCENARIO, nodes=2)
    demo.submit()
    demo.wait_for_scheduler()
    demo.prepare()
    states = {name: o.state for name, o in demo.outcomes.items()}
    assert states == {"whole-pf": "prepared", "one-vf": "prepared", "numa-pair": "prepared",
                      "too-big": "unschedulable"}, {n: o.detail for n, o in demo.outcomes.items()}
    (pf,) = devices_of(demo, "whole-pf")
    assert pf.is_pf and pf.allocated
    assert demo.outcomes["whole-pf"].env == {"MOCK_ACCEL_UUID": pf.uuid,
                                             "MOCK_ACCEL_PCI": pf.pci_address,
                                             "MOCK_ACCEL_DEVICE": pf.name,
                                             "MOCK_ACCEL_DEVICE_PATH": f"/dev/{pf.name}"}
    (vf,) = devices_of(demo, "one-vf")
    assert not vf.is_pf and vf.allocated
    pair = devices_of(demo, "numa-pair")
    assert len(pair) == 2 and pair[0].numa_node == pair[1].numa_node
    assert all(d.is_pf for d in pair)
    env = demo.outcomes["numa-pair"].env
    assert env["MOCK_ACCEL_COUNT"] == "2" and {env["MOCK_ACCEL_UUID_0"],
                                               env["MOCK_ACCEL_UUID_1"]} == {d.uuid for d in pair}
    # a PF and one of its own VFs are never both handed out (shared counters)
    held = allocated_names(demo)
    for node_name, name in held:
        if "-vf" in name:
            assert (node_name, name.split("-vf")[0]) not in held
    assert len(held) == 4
    for claim in [c.name for c in SCENARIO]:
        demo.release(claim)
    assert allocated_names(demo) == set()
    assert all(not node.cdi.claim_uids() for node in demo.nodes.values())


def test_pf_is_not_allocatable_while_its_vf_is_held(driver_demo):
    scenario = [DemoClaim("vf", "a VF", ((VF, 1),)), DemoClaim("pf", "the PF", ((PF, 1),))]
    demo = driver_demo(scenario, topology=SimConfig(num_devices=1, numa_nodes=1, total_vfs=2,
                                                    num_vfs=2))
    demo.submit(["vf"])
    demo.wait_for_scheduler()
    demo.prepare()
    assert demo.outcomes["vf"].state == "prepared"
    demo.submit(["pf"])
    demo.wait_for_scheduler()
    assert demo.outcomes["pf"].state == "unschedulable"
    demo.release("vf")
    demo.release("pf")
    demo.submit(["pf"])
    demo.wait_for_scheduler()
    demo.prepare()
    assert demo.outcomes["pf"].state == "prepared" and demo.outcomes["pf"].devices == ["mock0"]


def test_unhealthy_device_is_avoided(driver_demo):
    scenario = [DemoClaim("first", "a PF", ((PF, 1),)), DemoClaim("second", "a PF", ((PF, 1),))]
    demo = driver_demo(scenario, topology=SimConfig(num_devices=2, numa_nodes=1, total_vfs=0))
    (node,) = demo.nodes.values()
    node.sim.inject_fault("mock0")

    def tainted() -> bool:
        slices = demo.client.list("/apis/resource.k8s.io/v1/resourceslices",
                                  field_selector=f"spec.nodeName={node.name}")
        return any(d.get("taints") for s in slices for d in s["spec"].get("devices", []))
    wait_until(tainted, 5, "the controller to publish the taint", interval=0.2)
    demo.submit(["first"])
    demo.wait_for_scheduler()
    demo.prepare()
    assert demo.outcomes["first"].devices == ["mock1"]
    demo.submit(["second"])
    demo.wait_for_scheduler()
    assert demo.outcomes["second"].state == "unschedulable"


def test_pcie_root_alignment(driver_demo):
    scenario = [DemoClaim("aligned", "a PF and a VF on one PCIe root", ((PF, 1), (VF, 1)),
                          "resource.kubernetes.io/pcieRoot")]
    demo = driver_demo(scenario, topology=SimConfig(num_devices=4, numa_nodes=2, total_vfs=2,
                                                    num_vfs=2))
    demo.submit()
    demo.wait_for_scheduler()
    demo.prepare()
    assert demo.outcomes["aligned"].state == "prepared"
    pf, vf = devices_of(demo, "aligned")
    assert pf.is_pf and not vf.is_pf and pf.pcie_root == vf.pcie_root
    assert vf.physfn != pf.name  # its own PF is consumed by the VF's counters
