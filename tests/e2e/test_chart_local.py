"""The stand-in kubelet of the local e2e mode (mock_accel.localnodes) without a cluster:
commands, environment, mounts and paths as the rendered chart gives them; and the notebook
runner stopping at the first failing cell with the executed notebook kept."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mock_accel import localnodes as cl
from tests.e2e.run_notebooks import parse_value, run

POD = {"metadata": {"name": "agent-x", "namespace": "ns", "uid": "1234"},
       "spec": {"nodeName": "node-0", "serviceAccountName": "agent",
                "volumes": [{"name": "dev", "hostPath": {"path": "/srv/sim/dev"}},
                            {"name": "reg",
                             "hostPath": {"path": "/var/lib/kubelet/plugins_registry"}},
                            {"name": "tmp", "emptyDir": {}}]}}
CONTAINER = {"name": "agent", "args": ["node-agent", "--cdi-dir=/var/run/cdi", "-v", "5"],
             "env": [{"name": "NODE_NAME",
                      "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                     {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                     {"name": "LEVEL", "value": "3"}],
             "volumeMounts": [{"name": "dev", "mountPath": "/host/dev"},
                              {"name": "reg", "mountPath": "/var/lib/kubelet/plugins_registry"},
                              {"name": "tmp", "mountPath": "/tmp"}]}


def test_containerfile_entrypoint_and_cmd(tmp_path):
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text('FROM a AS build\nENTRYPOINT ["nope"]\nFROM b\n'
                             'ENTRYPOINT ["mock-accel"]\nCMD ["--help"]\n')
    assert cl.image_entrypoint(containerfile) == (["mock-accel"], ["--help"])
    # args replace CMD; `mock-accel` is this checkout's CLI
    assert cl.container_argv(CONTAINER, containerfile) == [
        sys.executable, "-m", "mock_accel.cli", *CONTAINER["args"]]
    assert cl.container_argv({"name": "c"}, containerfile)[3:] == ["--help"]
    assert cl.container_argv({"name": "c", "command": ["/bin/true"]}, containerfile) == \
        ["/bin/true"]


def test_the_repositorys_driver_image_runs_our_cli():
    entrypoint, _ = cl.image_entrypoint()
    assert entrypoint == ["mock-accel"]


def test_environment_from_the_pod_spec():
    assert cl.container_env(POD, CONTAINER) == {"NODE_NAME": "node-0", "POD_UID": "1234",
                                                "LEVEL": "3"}
    secret = {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}
    with pytest.raises(cl.LocalInstallError, match="cannot give"):
        cl.container_env(POD, secret)


def test_mounts_roots_and_paths(tmp_path):
    mounts = cl.host_mounts(POD, CONTAINER)
    assert mounts == {"/host/dev": "/srv/sim/dev",
                      "/var/lib/kubelet/plugins_registry": "/var/lib/kubelet/plugins_registry"}
    node_root, root = tmp_path / "node", tmp_path / "c"
    cl.build_container_root(root, node_root, mounts)
    assert (root / "host" / "dev").resolve() == node_root / "srv" / "sim" / "dev"
    assert (node_root / "var" / "lib" / "kubelet" / "plugins_registry").is_dir()
    assert cl.translate_args(["prog", "/x", "--a=/y", "--b", "rel", "-v"], root) == [
        "prog", f"{root}/x", f"--a={root}/y", "--b", "rel", "-v"]
    # what a process wrote through its root, as the host reads it
    assert cl.to_host(f"{root}/host/dev/mock0", [str(root)], [mounts]) == "/srv/sim/dev/mock0"
    assert cl.to_host(f"{root}/etc/x", [str(root)], [mounts]) == "/etc/x"
    with pytest.raises(cl.LocalInstallError, match="nested"):
        cl.build_container_root(tmp_path / "n", node_root, {"/a": "/x", "/a/b": "/y"})


def test_path_defaults_of_our_cli_are_made_explicit():
    argv = cl.explicit_defaults(["node-agent", "--cdi-dir=/run/cdi"], {"DRIVER_NAME": "d.io"})
    assert "--cdi-dir=/run/cdi" in argv and "--sysfs-root=/" in argv
    assert "--registry-dir=/var/lib/kubelet/plugins_registry" in argv
    assert "--plugin-socket-dir=/var/lib/kubelet/plugins/d.io" in argv
    assert cl.explicit_defaults(["controller", "--sysfs-root", "/host"], {}) == \
        ["controller", "--sysfs-root", "/host"]


def test_short_dirs_leave_room_for_the_kubelets_socket_paths():
    made = [cl.short_dir() for _ in range(3)]
    try:
        socket = "/var/lib/kubelet/plugins/mock-accel.example.com/dra-" + "0" * 36 + ".sock"
        assert all(len(str(d) + socket) <= 105 for d in made) and len(set(made)) == 3
    finally:
        for d in made:
            d.rmdir()


def test_state_round_trip_and_as_written(tmp_path):
    install = cl.LocalInstall("k", "ns", "d", str(tmp_path), str(tmp_path / "s.json"),
                              nodes={"node-0": "/tmp/mnode0"})
    install.processes.append(cl.Process("node-0", "p", "u", "c", ["x"], {}, "/tmp/mroot1",
                                        {"/host/dev": "/dev"}, "log", pid=1))
    install.save()
    again = cl.LocalInstall.load(tmp_path / "s.json")
    assert again == install
    assert cl.as_written(again, "node-0", "/tmp/mroot1/host/dev/mock0") == "/host/dev/mock0"
    # resolved through the root's symlinks into the node: back to the container's view
    assert cl.as_written(again, "node-0", "/tmp/mnode0/dev/mock0") == "/host/dev/mock0"
    assert not again.alive(again.processes[0])  # pid 1 is not running our command


def test_parse_value():
    assert parse_value("120") == 120 and parse_value("1.5") == 1.5
    assert parse_value("local") == "local" and parse_value("/x.yaml") == "/x.yaml"


def notebook(cells: list[str], path: Path) -> Path:
    path.write_text(json.dumps({"cells": [
        {"cell_type": "code", "id": f"c{i}", "metadata": {"tags": ["parameters"]} if i == 0
         else {}, "source": source, "execution_count": None, "outputs": []}
        for i, source in enumerate(cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "python3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_runner_stops_at_the_first_failing_cell(tmp_path, capsys):
    first = notebook(["value = 1", "print('ran', value)", "assert value == 2, 'wrong value'",
                      "print('never')"], tmp_path / "10_first.ipynb")
    second = notebook(["x = 0", "print('second ran')"], tmp_path / "11_second.ipynb")
    out = tmp_path / "out"
    assert run([first, second], out, {"value": 2}, timeout=120) == 0
    assert run([first, second], out, {"value": 3}, timeout=120) == 1
    printed = capsys.readouterr().out
    assert "FAILED: 10_first.ipynb" in printed and "wrong value" in printed
    executed = json.loads((out / "10_first.ipynb").read_text())
    outputs = [c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code"]
    assert any(o.get("ename") == "AssertionError" for cell in outputs for o in cell)
    assert not any("never" in o.get("text", "") for cell in outputs for o in cell)
    assert os.path.exists(out / "11_second.ipynb")  # from the first, passing run only
