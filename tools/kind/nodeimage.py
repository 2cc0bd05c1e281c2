"""Build the offline kind node image `mock-accel/kind-node:<kubernetes version>` step by step.

Nothing can be pulled on the CI machines, so `kind build node-image` (which fetches etcd, pause,
CoreDNS and kindnetd) cannot run. This assembles what it would make, from packages only:

1. kube binaries  kubelet, kubeadm, kube-proxy (the kubebins Go module, a cache of their own)
                  beside the cached control plane and kubectl of `make cluster-bins`
2. go tools       containerd, runc (seccomp), crictl, the CNI plugins, CoreDNS (tools.gotools)
3. debian roots   two root filesystems by mmdebstrap, `docker import`ed: the node's (systemd
                  and kind's node tools) and a small one under the control-plane images
4. images         kubeadm's images, named as `kubeadm config images list` prints them, and pause
                  (tools/kind/pause.c), each `docker save`d
5. node base      kind's own base files (read from the Go module cache of kind), the binaries,
                  containerd's config with the two changes this host needs, and in kindnetd's
                  place a unit that writes the bridge CNI config for the node's podCIDR and
                  routes to the other nodes' (tools/kind/mock-accel-cni.sh)
6. node image     the images imported into the node's containerd (as kind does), committed as
                  `mock-accel/kind-node:<version>-<key>` and tagged `...:<version>`

Every step records a stamp when it completed; a run reuses completed steps and redoes the
others from scratch (a killed run leaves no stamp). The cache key holds every version.

    python -m tools.kind.nodeimage [--force]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mock_accel import kubebins
from mock_accel.kubebins import BuildError, fmt_seconds
from mock_accel.wait import WaitTimeout, wait_until
from tools import gotools
from tools.docker import HOST, docker

HERE = Path(__file__).parent
KIND_TOOL = "kind"
NODE_BINS = tuple(kubebins.NODE_PKGS)
SUITE = "bookworm"
NODE_PACKAGES = ("systemd", "conntrack", "iptables", "nftables", "iproute2", "ethtool",
                 "util-linux", "mount", "kmod", "libseccomp2", "pigz", "bash",
                 "ca-certificates", "curl", "jq", "procps", "e2fsprogs")
MIN_PACKAGES = ("iptables", "nftables", "conntrack", "ca-certificates")  # kube-proxy's tools
NODE_TOOLS = ("runc", "containerd", "crictl", "cni-plugins", "coredns")
REVISION = "2"  # bump when the image's layout changes without a version change
ROOT = Path(os.environ.get("MOCK_ACCEL_KIND_CACHE")
            or Path.home() / ".cache" / "mock-accel" / "kind")


KEYED = (".py", ".c", ".sh", ".service")  # the files of this folder the image is made of


def k8s_version() -> str:
    return kubebins.versions()["kubernetes"]


def image_name() -> str:
    """The node image's name for users: the last one built (`keyed_image` for these inputs)."""
    return f"mock-accel/kind-node:{k8s_version()}"


def keyed_image(key: str | None = None) -> str:
    """The node image of these inputs (or of `key`): never retagged by a build of others."""
    return f"{image_name()}-{key or cache_key()}"


def cache_key() -> str:
    """A digest of every version and input the image depends on."""
    parts = {"kube": kubebins.versions(), "suite": SUITE, "node": NODE_PACKAGES,
             "min": MIN_PACKAGES, "revision": REVISION,
             "tools": {n: gotools.TOOLS[n].key() for n in (*NODE_TOOLS, KIND_TOOL)},
             "files": [hashlib.sha256(p.read_bytes()).hexdigest()
                       for p in sorted(HERE.glob("*")) if p.suffix in KEYED]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return ROOT / f"{k8s_version()}-{cache_key()}"


def node_bin_dir() -> Path:
    """kubelet, kubeadm, kube-proxy: a cache of their own beside `make cluster-bins`' one."""
    return ROOT / "bin" / k8s_version()


def run(cmd: list[str], what: str, **kw) -> str:
    """Run a command; BuildError with its output's tail if it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{tail}")
    return r.stdout


def run_logged(cmd: list[str], what: str, log: Path, every: float = 30.0) -> None:
    """Run a long command into `log`, printing its elapsed time and last line every 30 s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)

        def finished():
            if proc.poll() is not None:
                return True
            lines = log.read_text(errors="replace").strip().splitlines() or [""]
            print(f"    ... {what}: {fmt_seconds(time.monotonic() - t0)}, {lines[-1][:80]}",
                  flush=True)
            return False

        wait_until(finished, timeout=3600, what=what, interval=every)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {proc.returncode}; log {log}):\n{tail}")


def dockerc(*args: str, what: str, **kw) -> str:
    """The docker CLI against our engine (tools.docker); BuildError if it fails."""
    r = docker(*args, check=False, **kw)
    if r.returncode:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (exit {r.returncode}):\n{tail}")
    return r.stdout


def image_id(ref: str) -> str | None:
    r = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def kind_module() -> Path:
    """kind's source tree in the Go module cache (its base image files are read from there)."""
    go, version = kubebins.go_binary(), gotools.TOOLS[KIND_TOOL].version
    r = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kind@{version}"],
                       capture_output=True, text=True, env=kubebins.go_env(), cwd="/tmp")
    if r.returncode:
        raise BuildError(f"go mod download sigs.k8s.io/kind@{version}: {r.stdout}{r.stderr}")
    return Path(json.loads(r.stdout)["Dir"])


# -- 1. kube binaries ------------------------------------------------------------------------


def step_kube_bins(work: Path) -> dict:
    """kubelet, kubeadm, kube-proxy into their own cache; the control plane from cluster-bins."""
    out, vers, go = node_bin_dir(), kubebins.versions(), kubebins.go_binary()
    out.mkdir(parents=True, exist_ok=True)
    stamp = kubebins.read_stamp(out)
    date = None
    for name in NODE_BINS:
        if stamp.get("bins", {}).get(name) == vers["kubernetes"] and (out / name).is_file():
            continue
        date = date or kubebins._k8s_build_date(go, vers["kubernetes"])
        tmp = out / f".{name}.partial"
        cmd = [go, "build", "-v", "-trimpath", "-ldflags",
               kubebins.k8s_ldflags(vers["kubernetes"], date), "-o", str(tmp),
               kubebins.NODE_PKGS[name]]
        t0 = time.monotonic()
        kubebins.run_go(name, cmd, kubebins.MODULE_DIR, kubebins.go_env(),
                        work / "logs" / f"{name}.log")
        tmp.replace(out / name)
        stamp.setdefault("bins", {})[name] = vers["kubernetes"]
        stamp.setdefault("build_seconds", {})[name] = round(time.monotonic() - t0, 1)
        kubebins._write_stamp(out, stamp)
        print(f"    {name} built in {fmt_seconds(time.monotonic() - t0)}", flush=True)
    cp = kubebins.ensure_bins(("etcd", "kube-apiserver", "kube-scheduler",
                               "kube-controller-manager", "kubectl"))
    return {**{n: str(p) for n, p in cp.items()}, **{n: str(out / n) for n in NODE_BINS}}


# -- 2. go tools -----------------------------------------------------------------------------


def step_go_tools(work: Path) -> dict:
    return {n: str(gotools.ensure(n, work / "logs")) for n in NODE_TOOLS}


# -- 3. debian roots -------------------------------------------------------------------------


def root_images() -> dict[str, str]:
    """The two root images, each tagged by a digest of its suite and packages."""
    def key(packages):
        return hashlib.sha256(json.dumps([SUITE, packages]).encode()).hexdigest()[:12]
    return {"node": f"mock-accel/kind-rootfs:{key(NODE_PACKAGES)}",
            "min": f"mock-accel/kind-min:{key(MIN_PACKAGES)}"}


def step_debian_roots(work: Path) -> dict:
    """Two minbase root filesystems from Debian's packages, imported as images."""
    images = root_images()
    for which, packages in (("node", NODE_PACKAGES), ("min", MIN_PACKAGES)):
        if image_id(images[which]):
            continue
        tar = work / f"{which}-rootfs.tar"
        tar.unlink(missing_ok=True)
        t0 = time.monotonic()
        run_logged(["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}",
                    SUITE, str(tar)], f"mmdebstrap of the {which} root",
                   work / "logs" / f"mmdebstrap-{which}.log")
        dockerc("import", str(tar), images[which], what=f"docker import of {tar}")
        tar.unlink()
        print(f"    {images[which]} in {fmt_seconds(time.monotonic() - t0)}", flush=True)
    return images


# -- 4. images -------------------------------------------------------------------------------

# no network: nothing is fetched, and the shared daemon's docker0 bridge may be gone
BUILD = ("build", "-q", "--network", "none")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def required_images(kubeadm: str) -> list[str]:
    """The images kubeadm pulls, exactly as `kubeadm config images list` names them."""
    out = run([kubeadm, "config", "images", "list", "--kubernetes-version", k8s_version()],
              "kubeadm config images list")
    return [x.strip() for x in out.splitlines() if x.strip()]


def containerfile(image: str, bins: dict, tools: dict, base: str) -> tuple[str, Path]:
    """The Containerfile and the one file an image of kubeadm's list is made of."""
    repo = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    if repo == "pause":
        return "FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n", Path("pause")
    if repo == "coredns":  # static (CGO off): kubeadm runs it with the image's entrypoint
        return ("FROM scratch\nCOPY coredns /coredns\nEXPOSE 53 53/udp\n"
                "ENTRYPOINT [\"/coredns\"]\n", Path(tools["coredns"]) / "coredns")
    if repo in bins:  # the Kubernetes and etcd binaries link glibc: a Debian base
        return (f"FROM {base}\nENV {PATH_ENV}\nCOPY {repo} /usr/local/bin/{repo}\n"
                f"ENTRYPOINT [\"/usr/local/bin/{repo}\"]\n", Path(bins[repo]))
    raise BuildError(f"kubeadm wants {image}, which this builder does not know how to make")


def step_images(work: Path, bins: dict, tools: dict, roots: dict) -> dict:
    """Each of kubeadm's images from its binary, saved to images/<name>.tar."""
    out = work / "images"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pause = work / "pause"
    run(["gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-o", str(pause),
         str(HERE / "pause.c")], "compiling pause.c")
    names = required_images(bins["kubeadm"])
    for image in names:
        text, src = containerfile(image, bins, tools, roots["min"])
        src = pause if src == Path("pause") else src
        ctx = work / "ctx" / image.replace("/", "_").replace(":", "_")
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        shutil.copy2(src, ctx / text.split("COPY ", 1)[1].split()[0])
        (ctx / "Containerfile").write_text(text)
        dockerc(*BUILD, "-t", image, "-f", str(ctx / "Containerfile"), str(ctx),
                what=f"docker build of {image}")
        tar = out / (image.rsplit("/", 1)[-1].replace(":", "_") + ".tar")
        dockerc("save", "-o", str(tar), image, what=f"docker save of {image}")
        shutil.rmtree(ctx)
        print(f"    {image}", flush=True)
    return {"images": names}


# -- 5. node base ----------------------------------------------------------------------------

CNI_UNIT = "mock-accel-cni.service"  # kindnetd's job on this image: tools/kind/mock-accel-cni.sh
# kind applies /kind/manifests/default-cni.yaml (as admin, after `kubeadm init`, before the
# workers join) unless the config disables its CNI. Each node's mock-accel-cni unit does the
# work with the kubelet's credentials, and a node may read only its own Node object (the Node
# authorizer): this lets the group of nodes read all Nodes (their podCIDRs and addresses), what
# kindnetd's service account may, and records what the CNI is (kindnetd cannot be pulled).
DEFAULT_CNI = """# mock-accel offline kind node: the CNI is the bridge plugin, configured
# on each node for its podCIDR by the mock-accel-cni unit, which also routes to the other
# nodes' podCIDRs (tools/kind/mock-accel-cni.sh, tools/kind/README.md)
apiVersion: v1
kind: ConfigMap
metadata:
  name: mock-accel-cni
  namespace: kube-system
data:
  cni: bridge (/etc/cni/net.d/10-mock-accel-bridge.conflist, written by mock-accel-cni.service)
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: mock-accel-cni
rules:
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: mock-accel-cni
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: mock-accel-cni
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: system:nodes
"""
NODE_CONTAINERFILE = """FROM {base}
COPY root/ /
RUN set -eu; chmod 755 /kind /kind/bin; \\
    find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete; \\
    cd /lib/systemd/system; rm -f multi-user.target.wants/* local-fs.target.wants/* \\
      sockets.target.wants/*udev* sockets.target.wants/*initctl* basic.target.wants/*; \\
    rm -f /etc/systemd/system/*.wants/*; cd /; \\
    echo ReadKMsg=no >> /etc/systemd/journald.conf; ln -sf /usr/lib/systemd/systemd /sbin/init; \\
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
      {cni_unit}; \\
    systemctl mask systemd-binfmt.service; mkdir -p /etc/kubernetes/manifests; \\
    ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer|length] |= . + \\
      {{"path": "/kind/bin/mount-product-files.sh"}}' | jq 'del(.process.rlimits)' \\
      > /etc/containerd/cri-base.json; \\
    containerd --version; runc --version; kubelet --version; crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""


def _copy_tree(src: Path, dst: Path) -> None:
    """kind's base files with kind's modes: scripts and directories 0755, the rest 0644."""
    for p in sorted(src.rglob("*")):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o755)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)
        script = p.parent.name == "bin"
        target.chmod(0o755 if script else 0o644)


def containerd_config(text: str, pause: str) -> str:
    """kind's containerd config with our pause image and oom_score_adj kept to containerd's."""
    edits = {'sandbox_image = "registry.k8s.io/pause:': f'sandbox_image = "{pause}"',
             # this host cannot set a negative oom_score_adj (no CAP_SYS_RESOURCE)
             "restrict_oom_score_adj = false": "restrict_oom_score_adj = true"}
    lines = text.splitlines()
    for needle, new in edits.items():
        hits = [i for i, x in enumerate(lines) if needle in x]
        if len(hits) != 1:
            raise BuildError(f"kind's containerd config has {len(hits)} lines with {needle!r}")
        indent = lines[hits[0]][:len(lines[hits[0]]) - len(lines[hits[0]].lstrip())]
        lines[hits[0]] = indent + new
    return "\n".join(lines) + "\n"


def node_root(root: Path, bins: dict, tools: dict, images: list[str]) -> None:
    """The files the node image adds to its Debian root."""
    _copy_tree(kind_module() / "images" / "base" / "files", root)
    shutil.rmtree(root / "LICENSES", ignore_errors=True)
    (pause,) = [i for i in images if "/pause:" in i]
    cfg = root / "etc" / "containerd" / "config.toml"
    cfg.write_text(containerd_config(cfg.read_text(), pause))
    place = {"usr/bin": [bins[n] for n in ("kubelet", "kubeadm", "kubectl")],
             "usr/local/sbin": [Path(tools["runc"]) / "runc"],
             "usr/local/bin": [Path(tools["crictl"]) / "crictl",
                               *(Path(tools["containerd"]) / b for b in
                                 ("containerd", "ctr", "containerd-shim-runc-v2"))],
             "opt/cni/bin": sorted(Path(tools["cni-plugins"]).iterdir())}
    for where, files in place.items():
        (root / where).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, root / where / Path(f).name)
    (root / "etc" / "cni" / "net.d").mkdir(parents=True)  # empty: the node is NotReady until
    shutil.copy2(HERE / "mock-accel-cni.sh", root / "usr/local/bin/mock-accel-cni")  # writes it
    shutil.copy2(HERE / CNI_UNIT, root / "etc/systemd/system" / CNI_UNIT)
    (root / "kind" / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "kind" / "manifests" / "default-cni.yaml").write_text(DEFAULT_CNI)
    (root / "kind" / "version").write_text(k8s_version() + "\n")


def step_node_base(work: Path, bins: dict, tools: dict, roots: dict, images: dict) -> dict:
    ctx = work / "node"
    shutil.rmtree(ctx, ignore_errors=True)
    node_root(ctx / "root", bins, tools, images["images"])
    (ctx / "Containerfile").write_text(NODE_CONTAINERFILE.format(base=roots["node"],
                                                                  cni_unit=CNI_UNIT))
    tag = f"mock-accel/kind-node-base:{cache_key()}"
    dockerc(*BUILD, "-t", tag, "-f", str(ctx / "Containerfile"), str(ctx),
            what="docker build of the node base", timeout=1800)
    shutil.rmtree(ctx)
    return {"image": tag, "id": image_id(tag)}


# -- 6. node image ---------------------------------------------------------------------------

IMPORT = ["ctr", "--namespace=k8s.io", "images", "import",
          "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack",
          "--digests", "-"]


def _import(container: str, tar: Path, attempts: int = 2) -> None:
    """`ctr images import` of one saved image into the build container's containerd."""
    for attempt in range(1, attempts + 1):
        with open(tar, "rb") as fh:
            r = subprocess.run(["docker", "exec", "-i", container, *IMPORT], stdin=fh,
                               capture_output=True, env={**os.environ, "DOCKER_HOST": HOST})
        if r.returncode == 0:
            return
        said = "\n".join(x for x in (r.stdout + r.stderr).decode(errors="replace").splitlines()
                         if "DEPRECATION" not in x)[-1500:]
        print(f"    ctr import of {tar.name} failed (attempt {attempt}, exit {r.returncode}): "
              f"{said}", flush=True)
    raise BuildError(f"ctr import of {tar.name} failed {attempts} times (exit {r.returncode}): "
                     f"{said}")


def step_node_image(work: Path, base: dict, images: dict) -> dict:
    """Import the images into the node's containerd in a build container, then commit it."""
    name = f"mock-accel-kind-build-{cache_key()}"
    docker("rm", "-f", "-v", name, check=False)
    dockerc("run", "-d", "--name", name, "--network", "none", "--entrypoint", "sleep",
            "--security-opt", "seccomp=unconfined", base["image"], "infinity",
            what="starting the build container")
    try:
        dockerc("exec", name, "bash", "-c", "nohup containerd >/var/log/containerd-build.log "
                "2>&1 &", what="starting containerd in the build container")
        try:
            wait_until(lambda: docker("exec", name, "ctr", "version", check=False,
                                      timeout=20).returncode == 0, timeout=60,
                       what="containerd in the build container to answer", interval=1)
        except WaitTimeout as e:
            log = docker("exec", name, "tail", "-5", "/var/log/containerd-build.log",
                         check=False).stdout
            raise BuildError(f"{e}; its log ends:\n{log}") from None
        for tar in sorted((work / "images").glob("*.tar")):
            _import(name, tar)
        listed = dockerc("exec", name, "ctr", "--namespace=k8s.io", "images", "list", "-q",
                         what="listing the imported images").split()
        missing = [i for i in images["images"] if i not in listed]
        if missing:
            raise BuildError(f"containerd lacks {missing} after the import (has {listed})")
        dockerc("exec", name, "bash", "-c", "kill $(pidof containerd); "
                "while pidof containerd >/dev/null; do sleep 0.2; done; "
                "rm -f /var/log/containerd-build.log", what="stopping containerd")
        dockerc("commit", "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                "--change", 'CMD []', "--change", 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""',
                name, keyed_image(), what="docker commit of the node image")
    finally:
        docker("rm", "-f", "-v", name, check=False)
    return {"image": keyed_image(), "id": image_id(keyed_image())}


# -- the steps -------------------------------------------------------------------------------

STEPS = ("kube binaries", "go tools", "debian roots", "images", "node base", "node image")


def _stamp(work: Path, step: str) -> Path:
    return work / "stamps" / (step.replace(" ", "-") + ".json")


def _still_valid(step: str, result: dict, work: Path) -> bool:
    """Whether a completed step's output is still there (a stamp alone proves nothing)."""
    if step == "images":
        return all((work / "images" / (i.rsplit("/", 1)[-1].replace(":", "_") + ".tar"))
                   .is_file() for i in result.get("images", []))
    if step in ("node base", "node image"):
        return bool(result.get("id")) and image_id(result["image"]) == result["id"]
    return False  # the first three keep caches of their own and are cheap to re-check


def _run_step(i: int, step: str, work: Path, fn, *args) -> dict:
    stamp = _stamp(work, step)
    try:
        done = json.loads(stamp.read_text())
    except (OSError, ValueError):
        done = None
    if done is not None and _still_valid(step, done, work):
        print(f"[{i}/{len(STEPS)}] {step}: cached", flush=True)
        return done
    stamp.unlink(missing_ok=True)
    print(f"[{i}/{len(STEPS)}] {step} ...", flush=True)
    t0 = time.monotonic()
    try:
        result = fn(work, *args)
    except (BuildError, OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"step {i}/{len(STEPS)} ({step}) failed: {e}") from None
    seconds = round(time.monotonic() - t0, 1)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({**result, "seconds": seconds}, indent=2, sort_keys=True) + "\n")
    print(f"[{i}/{len(STEPS)}] {step} done in {fmt_seconds(seconds)}", flush=True)
    return result


KEEP_OTHERS = 2  # other keys' caches kept: the most recently used ones ...
KEEP_DAYS = 3.0  # ... while used in the last days


def last_used(d: Path) -> float:
    """When a build last used the cache `d` (its `used` file; the folder's mtime before)."""
    for p in (d / "used", d):
        try:
            return p.stat().st_mtime
        except OSError:
            pass
    return 0.0


def prune(keep: Path, now: float | None = None) -> list[Path]:
    """Remove the caches (and images) of this version's other keys, bounded but safe for other
    checkouts (whose tools/kind may differ, so whose key does): a key survives while a build
    used it in the last KEEP_DAYS days and it is one of the KEEP_OTHERS most recently used;
    the key the plain `image_name()` tag points at always survives. Each holds about a
    gigabyte of image archives and two images."""
    now = time.time() if now is None else now
    tagged = image_id(image_name())
    others = sorted((d for d in keep.parent.glob(f"{k8s_version()}-*")
                     if d != keep and d.is_dir()), key=last_used, reverse=True)
    gone = []
    for rank, d in enumerate(others):
        key = d.name.rsplit("-", 1)[1]
        if ((rank < KEEP_OTHERS and now - last_used(d) < KEEP_DAYS * 86400)
                or (tagged is not None and image_id(keyed_image(key)) == tagged)):
            continue
        docker("rmi", f"mock-accel/kind-node-base:{key}", keyed_image(key), check=False)
        shutil.rmtree(d, ignore_errors=True)
        gone.append(d)
    if gone:
        print(f"removed {len(gone)} stale cache(s): {', '.join(d.name for d in gone)}")
    return gone


def build(force: bool = False) -> str:
    """Build (or find) the node image, tag it `image_name()`; return its keyed name."""
    work = cache_dir()
    prune(work)
    if force:
        shutil.rmtree(work / "stamps", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "used").touch()  # what prune() of any checkout keeps
    print(f"kind node image {image_name()} (cache {work})", flush=True)
    t0 = time.monotonic()
    bins = _run_step(1, STEPS[0], work, step_kube_bins)
    tools = _run_step(2, STEPS[1], work, step_go_tools)
    roots = _run_step(3, STEPS[2], work, step_debian_roots)
    images = _run_step(4, STEPS[3], work, step_images, bins, tools, roots)
    base = _run_step(5, STEPS[4], work, step_node_base, bins, tools, roots, images)
    node = _run_step(6, STEPS[5], work, step_node_image, base, images)["image"]
    dockerc("tag", node, image_name(), what=f"docker tag {node} {image_name()}")
    print(f"{node} ready as {image_name()} ({fmt_seconds(time.monotonic() - t0)})", flush=True)
    return node


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.kind.nodeimage",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="redo every step")
    ap.add_argument("--print-image", action="store_true", help="only print the image name")
    a = ap.parse_args(argv)
    if a.print_image:
        print(image_name())
        return 0
    try:
        build(a.force)
    except BuildError as e:
        print(f"kind-node-image: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
