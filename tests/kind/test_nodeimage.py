"""The node image builder's own logic, without Docker (quick; tools/kind/nodeimage.py).

kind's containerd config gets exactly our two edits (and a changed upstream file is refused,
not silently left unedited); a step whose stamp exists but whose output is gone is built again;
a failing step is named; the kind the builder installs is the kind the e2e scripts pin.
"""
from __future__ import annotations

import json
import os

import pytest
import yaml

from mock_accel.kubebins import BuildError
from tests.e2e.test_kind_scripts import lib_value
from tools import gotools
from tools.kind import nodeimage


def test_containerd_config_gets_our_pause_and_restricted_oom_score_adj():
    text = (nodeimage.kind_module() / "images" / "base" / "files" / "etc" / "containerd"
            / "config.toml").read_text()
    out = nodeimage.containerd_config(text, "registry.k8s.io/pause:3.10.2")
    assert '  sandbox_image = "registry.k8s.io/pause:3.10.2"' in out.splitlines()
    assert "  restrict_oom_score_adj = true" in out.splitlines()
    assert "restrict_oom_score_adj = false" not in out
    changed = [a for a, b in zip(text.splitlines(), out.splitlines(), strict=True)
               if a != b]
    assert len(changed) == 2
    with pytest.raises(BuildError, match="restrict_oom_score_adj = false"):
        nodeimage.containerd_config(text.replace("restrict_oom_score_adj = false", ""), "p")


def test_a_step_without_its_output_is_built_again(tmp_path, capsys):
    calls = []

    def step(work, *args):
        calls.append(args)
        (work / "images").mkdir(exist_ok=True)
        (work / "images" / "pause_3.tar").write_text("x")
        return {"images": ["registry.k8s.io/pause:3"]}

    assert nodeimage._run_step(4, "images", tmp_path, step, "a") == {
        "images": ["registry.k8s.io/pause:3"]}
    stamp = json.loads((tmp_path / "stamps" / "images.json").read_text())
    assert stamp["images"] == ["registry.k8s.io/pause:3"] and "seconds" in stamp
    nodeimage._run_step(4, "images", tmp_path, step, "b")  # output there: cached
    assert calls == [("a",)] and "[4/6] images: cached" in capsys.readouterr().out
    (tmp_path / "images" / "pause_3.tar").unlink()  # a half-gone cache
    nodeimage._run_step(4, "images", tmp_path, step, "c")
    assert calls == [("a",), ("c",)]


def test_a_failing_step_is_named_and_leaves_no_stamp(tmp_path):
    def step(work):
        raise BuildError("mmdebstrap exploded")

    with pytest.raises(BuildError, match=r"^step 3/6 \(debian roots\) failed: mmdebstrap"):
        nodeimage._run_step(3, "debian roots", tmp_path, step)
    assert not (tmp_path / "stamps" / "debian-roots.json").exists()


def test_the_kind_built_is_the_kind_the_scripts_pin():
    assert gotools.TOOLS["kind"].version == lib_value("KIND_VERSION")


def test_pruning_keeps_other_checkouts_recent_keys_and_the_tagged_one(tmp_path, monkeypatch):
    """Two checkouts whose tools/kind differ build two keys in turn: neither prunes the
    other's (it happened twice in one day, each rebuild ~2 min). Old or surplus keys go, but
    never the one `mock-accel/kind-node:<version>` points at."""
    monkeypatch.setattr(nodeimage, "k8s_version", lambda: "v1.37.2")
    removed = []
    monkeypatch.setattr(nodeimage, "docker", lambda *a, **k: removed.append(a))
    ids = {nodeimage.image_name(): "sha256:t", nodeimage.keyed_image("old2"): "sha256:t",
           nodeimage.keyed_image("new1"): "sha256:n"}
    monkeypatch.setattr(nodeimage, "image_id", ids.get)
    now, day = 1_000_000_000.0, 86400
    used = {"mine": now, "new1": now - 60, "new2": now - day, "new3": now - 2 * day,
            "old1": now - 4 * day, "old2": now - 5 * day}
    for key, t in used.items():
        (tmp_path / f"v1.37.2-{key}" / "images").mkdir(parents=True)
        (tmp_path / f"v1.37.2-{key}" / "used").touch()
        os.utime(tmp_path / f"v1.37.2-{key}" / "used", (t, t))
    (tmp_path / "v1.36.0-other" / "images").mkdir(parents=True)
    gone = nodeimage.prune(tmp_path / "v1.37.2-mine", now=now)
    # new1, new2: the two most recently used others; old2: the tagged one (however old)
    assert sorted(d.name for d in gone) == ["v1.37.2-new3", "v1.37.2-old1"]
    assert sorted(d.name for d in tmp_path.iterdir()) == [
        "v1.36.0-other", "v1.37.2-mine", "v1.37.2-new1", "v1.37.2-new2", "v1.37.2-old2"]
    assert sorted(removed) == [("rmi", f"mock-accel/kind-node-base:{k}", nodeimage.keyed_image(k))
                               for k in ("new3", "old1")]
    # the other checkout's next build (key new1) keeps this one's, just used
    assert "v1.37.2-mine" not in [d.name for d in nodeimage.prune(tmp_path / "v1.37.2-new1",
                                                                  now=now + 60)]
    assert (tmp_path / "v1.37.2-mine").is_dir()


def test_a_cache_without_a_used_file_is_as_old_as_its_folder(tmp_path):
    d = tmp_path / "v1.37.2-abc"
    d.mkdir()
    os.utime(d, (1000.0, 1000.0))
    assert nodeimage.last_used(d) == 1000.0
    (d / "used").touch()
    assert nodeimage.last_used(d) > 1000.0
    assert nodeimage.last_used(tmp_path / "gone") == 0.0


def test_a_long_command_shows_progress_and_its_failure_its_log(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"
    nodeimage.run_logged(["sh", "-c", "echo step one; sleep 0.5; echo done"], "probe", log,
                         every=0.2)
    assert "    ... probe: " in capsys.readouterr().out and "step one" in log.read_text()
    with pytest.raises(BuildError, match=r"probe failed \(exit 3; log .*x\.log\):\nbroken"):
        nodeimage.run_logged(["sh", "-c", "echo broken; exit 3"], "probe", log, every=0.2)


def test_the_node_root_has_the_cni_unit_and_no_cni_config(tmp_path):
    """kindnetd's place: the unit writes the config for the node's podCIDR at boot (none is
    baked in: the node stays NotReady until then); the nodes may read every Node."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("kubelet", "kubeadm", "kubectl", "runc", "crictl", "containerd", "ctr",
                 "containerd-shim-runc-v2"):
        (fake / name).write_text(name)
    cni = tmp_path / "cni"
    cni.mkdir()
    (cni / "bridge").write_text("bridge")
    tools = {"runc": fake, "crictl": fake, "containerd": fake, "cni-plugins": cni}
    root = tmp_path / "root"
    nodeimage.node_root(root, {n: fake / n for n in ("kubelet", "kubeadm", "kubectl")}, tools,
                        ["registry.k8s.io/pause:3.10.2"])
    script = root / "usr" / "local" / "bin" / "mock-accel-cni"
    assert script.read_text() == (nodeimage.HERE / "mock-accel-cni.sh").read_text()
    assert os.access(script, os.X_OK)
    unit = (root / "etc" / "systemd" / "system" / nodeimage.CNI_UNIT).read_text()
    assert "ExecStart=/usr/local/bin/mock-accel-cni\n" in unit
    assert list((root / "etc" / "cni" / "net.d").iterdir()) == []
    assert nodeimage.CNI_UNIT in nodeimage.NODE_CONTAINERFILE.format(
        base="b", cni_unit=nodeimage.CNI_UNIT).split("systemctl enable", 1)[1].split(";")[0]
    docs = list(yaml.safe_load_all((root / "kind" / "manifests" / "default-cni.yaml").read_text()))
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:nodes"}]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"],
                              "verbs": ["get", "list", "watch"]}]


def test_the_cache_key_covers_the_cni_unit(tmp_path, monkeypatch):
    before = nodeimage.cache_key()
    for f in nodeimage.HERE.iterdir():
        if f.suffix in nodeimage.KEYED:
            (tmp_path / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(nodeimage, "HERE", tmp_path)
    assert nodeimage.cache_key() == before
    (tmp_path / "mock-accel-cni.sh").write_text("#!/bin/bash\n")
    assert nodeimage.cache_key() != before
    assert nodeimage.keyed_image("abc") == f"{nodeimage.image_name()}-abc"
