"""What the node agent can write, asked from inside its container (issue 17): the probe that
tests/kind/test_kind_privilege.py (kind node, simulated tree) and
tests/vmnode/test_vmnode_privilege.py (guest node, the real module) run with `kubectl exec`.

PROBE is a Python program (the driver image has no shell). It opens files for writing
(O_WRONLY, never a byte written) or creates a file in a directory (removed at once), so a probe
that unexpectedly succeeds changes nothing — except `remove other`, which is meant to fail.
Its arguments: another driver's socket directory, another plugin's registration socket and
another vendor's CDI spec (made on the node first), and the node's root as the agent sees it
(`/host`). It prints one JSON object:

- `files`: the node's own /sys (PCI `config` and root-owned files) and the other driver's files;
- `dirs`: creating a file in the other driver's directory, the kubelet's plugins directory,
  plugins_registry;
- `still`: the first mock device's `status`, `inject_fault`, `sriov_numvfs` under
  `<root>/sys/class/mock-accel` (what the kind test asserts on the simulated tree);
- `device`: the same device's `status`, `inject_fault`, `sriov_numvfs`, `load_wordlist`
  (those that exist);
- `host_sysfs`: PCI `config`, `remove`, `reset`, `driver_override` files of the node's devices
  under `<root>/sys/devices` (the agent's writable mount: refused only by owner and mode);
- `agent` (ids and CapEff of the agent's pid 1), `cdi`, `pci_config_files`,
  `registry_listing`, `host_pci_in_tree`, `rw_mounts`.
"""
from __future__ import annotations

REFUSED = ("ENOENT", "EROFS", "EACCES", "EPERM")  # what "cannot write" may look like

PROBE = r"""
import errno, glob, json, os, sys
def open_w(path):
    try:
        os.close(os.open(path, os.O_WRONLY))
        return "writable"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def create_in(directory):
    path = os.path.join(directory, ".mock-accel-probe")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    os.unlink(path)
    return "writable"
def remove(path):
    try:
        os.unlink(path)
        return "removed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def ids(status):
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return {k: fields[k].split() for k in ("Uid", "Gid", "Groups", "CapEff")}
other, other_reg, other_spec = sys.argv[1:4]
root = sys.argv[4] if len(sys.argv) > 4 else "/host"
pci = sorted(glob.glob("/sys/bus/pci/devices/*/config"))[:3]
sysfs = [p for p in ("/sys/bus/pci/rescan", "/sys/kernel/uevent_helper",
                     "/sys/kernel/mm/transparent_hugepage/enabled") if os.path.exists(p)]
dev = sorted(glob.glob(root + "/sys/class/mock-accel/*/"))[0]
host_sysfs = [p for name in ("config", "remove", "reset", "driver_override")
              for p in sorted(glob.glob(root + "/sys/devices/pci*/*/" + name))[:3]]
out = {"files": {p: open_w(p) for p in pci + sysfs + [os.path.join(other, "dummy.sock"),
                                                     other_reg]},
       "dirs": {d: create_in(d) for d in (other, os.path.dirname(other),
                                          os.path.dirname(other_reg))},
       "still": {p: open_w(p) for p in (dev + "status", dev + "inject_fault",
                                        dev + "sriov_numvfs")},
       "device": {a: open_w(dev + a) for a in ("status", "inject_fault", "sriov_numvfs",
                                               "load_wordlist") if os.path.exists(dev + a)},
       "host_sysfs": {p: open_w(p) for p in host_sysfs},
       "agent": ids(open("/proc/1/status").read()),  # the node agent itself
       "cdi": {"create": create_in("/var/run/cdi"), "write other": open_w(other_spec),
               "remove other": remove(other_spec)},
       "pci_config_files": len(pci),
       "registry_listing": sorted(os.listdir(os.path.dirname(other_reg))),
       "host_pci_in_tree": glob.glob(root + "/sys/devices/pci*"),
       "rw_mounts": sorted(line.split()[4] for line in open("/proc/self/mountinfo")
                           if "rw" in line.split()[5].split(","))}
print(json.dumps(out))
"""


def probe_command(other: str, other_reg: str, other_spec: str, root: str = "/host") -> list[str]:
    """The probe as a command for `kubectl exec … --` (python3 in the agent's image)."""
    return ["python3", "-c", PROBE, other, other_reg, other_spec, root]
