"""The guest node's image archives (tools/vmnode/images.py, node.sh, VmNode.imported): names,
the list node.sh imports, and how the host reads node.sh's import log. Quick, no guest."""
from __future__ import annotations

import shlex
import threading

import pytest

from tools.vmnode import config
from tools.vmnode.images import archive_name
from tools.vmnode.node import NodeError, VmNode

SPEC = config.NodeSpec("vm0", 41234, "127.0.0.1:5001", "127.0.0.1:5001/mock-accel/pause:t",
                       imports=("/c/pause-t-1.tar", "/c/module-t-6.1-2.tar"))


def test_one_archive_name_per_set_of_references_and_image_ids() -> None:
    refs = {"127.0.0.1:5001/mock-accel/module:t-6.1.0-57-amd64": "sha256:" + "ab" * 32,
            "127.0.0.1:5001/mock-accel/pause:t": "sha256:" + "01" * 32}
    name = archive_name(refs)
    assert name.startswith("module-t-6.1.0-57-amd64+pause-t-") and name.endswith(".tar")
    assert archive_name(dict(reversed(refs.items()))) == name  # order does not matter
    rebuilt = {**refs, "127.0.0.1:5001/mock-accel/pause:t": "sha256:" + "02" * 32}
    assert archive_name(rebuilt) != name and archive_name(rebuilt).startswith(
        "module-t-6.1.0-57-amd64+pause-t-")


def test_node_env_lists_the_archives_for_node_sh() -> None:
    env = dict(line.split("=", 1) for line in config.node_env(SPEC, {}, "/cfg").splitlines())
    # one shell word, split by node.sh's unquoted $NODE_IMPORT
    assert shlex.split(env["NODE_IMPORT"])[0].split() == ["/c/pause-t-1.tar",
                                                          "/c/module-t-6.1-2.tar"]
    assert shlex.split(env["NODE_PREPULL"]) == [""]


def _node(tmp_path, log: str) -> VmNode:
    node = VmNode("pause")
    node.run_dir = tmp_path
    node._guest = threading.Thread(target=lambda: None)  # never started: "not alive"
    (tmp_path / "import.log").write_text(log)
    return node


def test_imported_reads_node_sh_lines_and_a_failed_import_is_an_error(tmp_path) -> None:
    node = _node(tmp_path, "vmnode: imported /c/pause-t-1.tar in 1.5s (guest +60.2s)\n"
                           "vmnode: imported /c/module-t-6.1-2.tar in 41.0s (guest +101.0s)\n")
    assert node.imported() == {"/c/pause-t-1.tar": 1.5, "/c/module-t-6.1-2.tar": 41.0}
    (tmp_path / "import.log").write_text(
        "vmnode: import of /c/pause-t-1.tar failed (import.err) (guest +9.0s)\n")
    with pytest.raises(NodeError, match="import of /c/pause-t-1.tar failed"):
        node.imported()


def test_wait_imported_stops_when_the_guest_is_gone(tmp_path) -> None:
    node = _node(tmp_path, "vmnode: imported /c/pause-t-1.tar in 1.5s (guest +60.2s)\n")
    with pytest.raises(NodeError, match="the guest stopped"):
        node.wait_imported(["/c/pause-t-1.tar", "/c/module-t-6.1-2.tar"], timeout=5)
