"""Run sysfs writes in a child process without CAP_SYS_ADMIN (still uid 0), as a pod's root is,
or as a non-root user in a group (the node agent under the module's `status_gid`).

`setpriv` (util-linux, on the host and in the guest's chroot) drops the capability from the
inheritable and bounding sets before exec, so the child's effective set lacks it; the child
reports its own `CapEff`, so a test can tell a refusal from a drop that did not happen. The
non-root child is a fork that drops to the user itself (it cannot exec the interpreter, which
lives under root's home); it works from the node's root with relative paths, since it cannot
search the root-only directories above a test's tree.
"""
from __future__ import annotations

import errno
import json
import os
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


def _write_all(node: SysfsNode, writes: list[tuple[str | None, str, str]]) -> dict[str, str | None]:
    errors: dict[str, str | None] = {}
    for name, attribute, value in writes:
        try:
            if attribute.startswith("/"):  # a file outside the ABI, e.g. a PCI `config`
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
        except OSError as err:
            errors[f"{name}/{attribute}"] = errno.errorcode[err.errno]
    return errors


def write_as_member(node: SysfsNode, writes: list[tuple[str | None, str, str]], uid: int,
                    gid: int) -> dict:
    """Do `writes` (as `write_without_cap_sys_admin`) in a forked child that runs as `uid`
    (also its primary group) with `gid` as its only supplementary group; returns its `ids`
    ([uid, gid, groups]), its `CapEff` as an int and each write's errno name (or None)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(reader)
            os.chdir(node.root)
            os.setgroups([gid])
            os.setgid(uid)
            os.setuid(uid)
            cap_eff = next(line.split()[1] for line in open("/proc/self/status")
                           if line.startswith("CapEff:"))
            report = {"ids": [os.getuid(), os.getgid(), os.getgroups()],
                      "cap_eff": int(cap_eff, 16),
                      "errors": _write_all(type(node)("."), writes)}
            os.write(writer, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and text, f"the child failed (wait status {status})"
    return json.loads(text)
