"""chart/files/node-dirs.py, the node agent's `node-dirs` init container, run for real on a tree
here (as root, as the init container is): the directories it owns become the agent's, links
untouched; the shared CDI directory keeps its owner, its other files and its ACL entries, and
gets an ACL entry and the sticky bit with which uid 65532 (a forked child) adds and replaces
its own specs and cannot replace, write or remove another vendor's."""
from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tools.locate import REPO

SCRIPT = REPO / "chart" / "files" / "node-dirs.py"
AGENT = 65532
OTHER_GROUP = 4242
ACL = "system.posix_acl_access"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown and a uid switch need root")


def node_dirs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.read_text(), *args],
                          capture_output=True, text=True, timeout=60)


def acl(path: Path) -> dict[tuple[int, int], int]:
    raw = os.getxattr(path, ACL)
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def as_agent(cdi: Path) -> dict[str, str]:
    """What uid 65532 (no capabilities, no extra group) gets for each action in `cdi`."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.chdir(cdi)  # the parents of tmp_path are root's alone
            os.setgroups([])
            os.setgid(AGENT)
            os.setuid(AGENT)
            results = {}

            def attempt(name, action):
                try:
                    action()
                    results[name] = "ok"
                except OSError as err:
                    results[name] = errno.errorcode[err.errno]

            attempt("create", lambda: Path("ours.json.tmp").write_text("{}"))
            attempt("rename own", lambda: os.replace("ours.json.tmp", "ours.json"))
            attempt("remove own", lambda: Path("ours.json").unlink())
            attempt("write other", lambda: os.close(os.open("other.json", os.O_WRONLY)))
            attempt("remove other", lambda: Path("other.json").unlink())
            attempt("replace other", lambda: (Path("x.tmp").write_text("{}"),
                                              os.replace("x.tmp", "other.json")))
            os.write(writer, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def test_owned_trees_become_the_agents_and_the_cdi_dir_stays_shared(tmp_path):
    plugin, sim, cdi = tmp_path / "plugin", tmp_path / "sim", tmp_path / "cdi"
    (sim / "sys" / "devices").mkdir(parents=True)
    (sim / "sys" / "devices" / "status").write_text("0x00000001\n")
    plugin.mkdir()
    (plugin / "checkpoint.json").write_text("{}")  # a root agent's, from before
    outside = tmp_path / "outside"
    outside.write_text("root's")
    (sim / "link").symlink_to(outside)
    cdi.mkdir(mode=0o755)
    (cdi / "other.json").write_text("{}")  # another vendor's spec
    # an ACL entry someone else set stays
    os.setxattr(cdi, ACL, struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in [
        (0x01, 7, 0xFFFFFFFF), (0x04, 5, 0xFFFFFFFF), (0x08, 5, OTHER_GROUP),
        (0x10, 5, 0xFFFFFFFF), (0x20, 5, 0xFFFFFFFF)]))
    for attempt in (1, 2):  # a second pod start changes nothing
        done = node_dirs(str(AGENT), str(AGENT), str(cdi), str(plugin), str(sim))
        assert done.returncode == 0, done.stderr
        for path in [plugin, plugin / "checkpoint.json", sim, sim / "sys" / "devices",
                     sim / "sys" / "devices" / "status"]:
            assert (path.stat().st_uid, path.stat().st_gid) == (AGENT, AGENT), (attempt, path)
        assert os.lstat(sim / "link").st_uid == AGENT and outside.stat().st_uid == 0
        assert (cdi.stat().st_uid, cdi.stat().st_gid) == (0, 0)
        assert (cdi / "other.json").stat().st_uid == 0
        assert cdi.stat().st_mode & 0o1000, "the sticky bit"
        assert acl(cdi) == {(0x01, 0xFFFFFFFF): 7, (0x02, AGENT): 7, (0x04, 0xFFFFFFFF): 5,
                            (0x08, OTHER_GROUP): 5, (0x10, 0xFFFFFFFF): 7,
                            (0x20, 0xFFFFFFFF): 5}, attempt
    assert as_agent(cdi) == {"create": "ok", "rename own": "ok", "remove own": "ok",
                             "write other": "EACCES", "remove other": "EPERM",
                             "replace other": "EPERM"}
    assert (cdi / "other.json").read_text() == "{}"


def test_without_the_init_container_the_agent_cannot_write_the_cdi_dir(tmp_path):
    """The same child against a plain root-owned 0755 directory: what the agent would get."""
    cdi = tmp_path / "cdi"
    cdi.mkdir(mode=0o755)
    (cdi / "other.json").write_text("{}")
    assert as_agent(cdi)["create"] == "EACCES"


def test_a_missing_directory_is_one_line(tmp_path):
    done = node_dirs(str(AGENT), str(AGENT), str(tmp_path), str(tmp_path / "absent"))
    assert done.returncode == 1
    assert done.stderr == f"node-dirs: {tmp_path / 'absent'}: No such file or directory\n"
