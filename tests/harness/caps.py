"""Run sysfs writes in a child process without CAP_SYS_ADMIN (still uid 0), as a pod's root is.

`setpriv` (util-linux, on the host and in the guest's chroot) drops the capability from the
inheritable and bounding sets before exec, so the child's effective set lacks it; the child
reports its own `CapEff`, so a test can tell a refusal from a drop that did not happen.
"""
from __future__ import annotations

import json
import subprocess
import sys

from mock_accel.sysfs import SysfsNode

_CHILD = """
import errno, json, os, sys
from importlib import import_module
from mock_accel.sim import has_cap_sys_admin
from mock_accel.sysfs import AttributeWriteError
module, qualname, root, writes = json.loads(sys.argv[1])
node = getattr(import_module(module), qualname)(root)
errors = {}
for name, attribute, value in writes:
    try:
        if attribute.startswith("/"):  # a file outside the ABI, e.g. the PCI core's sriov_numvfs
            fd = os.open(attribute, os.O_WRONLY)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        elif name is None:
            node.write_control(attribute, value)
        else:
            node.write_attr(name, attribute, value)
        errors[f"{name}/{attribute}"] = None
    except (AttributeWriteError, OSError) as err:
        errors[f"{name}/{attribute}"] = errno.errorcode[err.errno]
print(json.dumps({"cap_sys_admin": has_cap_sys_admin(), "errors": errors}))
"""


def write_without_cap_sys_admin(node: SysfsNode,
                                writes: list[tuple[str | None, str, str]]) -> dict:
    """Do `writes` ((device or None for a bus control file, attribute, value); an absolute
    path as the attribute is written as it is) in a child without CAP_SYS_ADMIN; returns its
    `cap_sys_admin` and each write's errno name (or None) keyed `device/attribute`."""
    spec = [type(node).__module__, type(node).__qualname__, str(node.root), writes]
    done = subprocess.run(
        ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--",
         sys.executable, "-c", _CHILD, json.dumps(spec)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
