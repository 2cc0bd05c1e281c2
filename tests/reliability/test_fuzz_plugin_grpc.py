"""Property-based fuzzing of the kubelet plugin's gRPC API (hypothesis, ≥ 10k requests; three
in four structured, one in four raw bytes):

- structured requests: NodePrepareResources / NodeUnprepareResources, v1 and v1beta1, with 0-4
  claims drawn from real claims (allocated by the real scheduler), real claims with a wrong UID,
  namespace or name, and arbitrary strings (empty, huge, unicode, paths, query strings). Every
  call must answer (no gRPC error), with exactly one entry per claim UID: the devices for a real
  claim, a clear error for anything else; devices, checkpoint and CDI specs must agree after
  every call (checked whenever a real claim was named, and every 100 calls);
- raw bytes as the request message: the server must answer with a status (a decoding error or
  a response), never an unhandled exception (UNKNOWN), and keep serving.

The plugin runs in this process on a simulated node, serving on its real unix socket, and reads
claims from the local control plane. Replay: see README.md."""
from __future__ import annotations

import logging
import shutil
import string
import time
import uuid

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_accel.claims import ClaimError, ClaimRef, check_claim_ref
from mock_accel.demo import Demo, DemoClaim
from mock_accel.kube import KubeClient
from mock_accel.proto import dra_v1_pb2, dra_v1beta1_pb2
from mock_accel.sim import SimConfig

from .common import FUZZ_EXAMPLES, fuzz_seeded, memory_tmpdir

pytestmark = pytest.mark.cluster
CLAIMS = [DemoClaim("one", "a PF", (("mock-accel-pf", 1),)),
          DemoClaim("two", "two PFs", (("mock-accel-pf", 2),))]
TOPOLOGY = SimConfig(num_devices=4, numa_nodes=1, total_vfs=0)
VERSIONS = {"v1": dra_v1_pb2, "v1beta1": dra_v1beta1_pb2}
METHODS = ("NodePrepareResources", "NodeUnprepareResources")


class Bed:
    def __init__(self, demo: Demo, node_name: str):
        self.demo, self.node = demo, demo.nodes[node_name]
        self.claims = {}   # uid -> (namespace, name)
        self.devices = {}  # uid -> allocated devices
        for claim in CLAIMS:
            obj = demo.claim(claim.name)
            uid = obj["metadata"]["uid"]
            self.claims[uid] = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            self.devices[uid] = sorted(r["device"] for r in
                                       obj["status"]["allocation"]["devices"]["results"])
        self.channel = grpc.insecure_channel(f"unix://{self.node.dra_socket}")
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def method(self, version: str, name: str, raw: bool = False):
        pb2 = VERSIONS[version]
        response = getattr(pb2, name + "Response")
        path = f"/{pb2.DESCRIPTOR.package}.DRAPlugin/{name}"
        return self.channel.unary_unary(
            path, request_serializer=None if raw else (lambda m: m.SerializeToString()),
            response_deserializer=response.FromString)

    def prepared(self) -> set[str]:
        return set(self.node.plugin.prepared_claims())

    def check(self) -> None:
        claims = self.node.plugin.prepared_claims()
        held = {d.device: uid for uid, c in claims.items() for d in c.devices}
        marked = {d.name for d in self.node.sim.discover() if d.allocated}
        assert marked == set(held), f"allocated {sorted(marked)}, held {sorted(held)}"
        assert self.node.cdi.claim_uids() == set(claims)
        assert set(claims) <= set(self.claims)
        assert not self.node.plugin._claim_locks, "a per-claim lock outlived its call"


@pytest.fixture(scope="module")
def bed(cluster):
    workdir = memory_tmpdir("ma-fuzz-grpc-")
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    label = {"mock-accel.example.com/reliability": "fuzz"}
    (node_name,) = cluster.create_nodes(1, prefix="rel-fuzz", labels=label)
    demo = Demo(client, [node_name], workdir, namespace=f"rel-{uuid.uuid4().hex[:8]}",
                scenario=CLAIMS, topology=TOPOLOGY, node_selector=label, timeout=60)
    bed = None
    try:
        demo.setup()
        demo.submit()
        demo.wait_for_scheduler()
        assert all(o.state == "allocated" for o in demo.outcomes.values()), demo.outcomes
        bed = Bed(demo, node_name)
        yield bed
    finally:
        if bed is not None:
            bed.method("v1", "NodeUnprepareResources")(dra_v1_pb2.NodeUnprepareResourcesRequest(
                claims=[dra_v1_pb2.Claim(namespace=ns, name=name, uid=uid)
                        for uid, (ns, name) in bed.claims.items()]), timeout=30)
            bed.channel.close()
        demo.teardown()
        client.delete(f"/api/v1/namespaces/{demo.namespace}")
        cluster.delete_node(node_name)
        shutil.rmtree(workdir, ignore_errors=True)


_odd = st.one_of(
    st.sampled_from(["", ".", "..", "../..", "a/b", "x?watch=true", "x#frag", "%2F", "x y",
                     "default", "kube-system", "UPPER", "-lead", "trail-", "a" * 254,
                     "00000000-0000-0000-0000-000000000000", "\u00e9", "\u202e", "\x00",
                     "x\ny"]),
    st.text(max_size=24), st.text(alphabet=string.ascii_lowercase + "-.", max_size=70),
    st.uuids().map(str))


@st.composite
def claim_refs(draw, real: list[tuple[str, str, str]]):
    """(namespace, name, uid): a real claim, one with a field changed, or arbitrary strings."""
    kind = draw(st.sampled_from(["real", "real", "wrong-uid", "wrong-name", "wrong-ns", "odd"]))
    if kind == "odd":
        return draw(_odd), draw(_odd), draw(_odd)
    namespace, name, uid = draw(st.sampled_from(real))
    if kind == "wrong-uid":
        uid = draw(_odd)
    elif kind == "wrong-name":
        name = draw(_odd)
    elif kind == "wrong-ns":
        namespace = draw(_odd)
    return namespace, name, uid


cases = {"count": 0, "structured": 0, "raw": 0, "errors": 0, "prepared": 0}
shown: list = []


def well_formed(bed: Bed, namespace: str, name: str, uid: str, names: bool = True) -> bool:
    try:
        check_claim_ref(ClaimRef(namespace, uid, name), bed.node.cdi, names)
    except ClaimError:
        return False
    return True


def outcome(bed: Bed, op: str, ref, prepared: set[str]) -> bool:
    """Whether the plugin must accept `ref` (updating `prepared`, the claims it holds)."""
    namespace, name, uid = ref
    if op == "NodeUnprepareResources":
        if not well_formed(bed, namespace, name, uid, names=False):
            return False
        prepared.discard(uid)
        return True
    real = bed.claims.get(uid)
    if not well_formed(bed, namespace, name, uid) or real is None:
        return False
    if uid in prepared or real == (namespace, name):   # prepared claims are known by UID
        prepared.add(uid)
        return True
    return False


def expect(bed: Bed, op: str, refs, before: set[str], answers) -> None:
    """Each claim's answer, from the prepared claims `before` the call. The plugin handles the
    claims in order; a UID given twice is answered once, for its last occurrence."""
    prepared, wanted = set(before), {}
    for ref in refs:
        wanted[ref[2]] = (ref, outcome(bed, op, ref, prepared))
    for uid, ((namespace, name, _), ok) in wanted.items():
        answer = answers[uid]
        # "internal error" is what the plugin says when an exception escaped a claim's handling
        assert not answer.error.startswith("internal error"), (namespace, name, uid, answer.error)
        assert answer.error.isprintable() and len(answer.error) < 4000, answer.error
        devices = sorted(d.device_name for d in getattr(answer, "devices", []))
        if ok:
            assert not answer.error, f"{op} {(namespace, name, uid)!r}: {answer.error}"
            if op == "NodePrepareResources":
                assert devices == bed.devices[uid]
                cases["prepared"] += 1
        else:
            assert answer.error and not devices, f"{op} of {(namespace, name, uid)!r}"
            cases["errors"] += 1
            if not well_formed(bed, namespace, name, uid, op == "NodePrepareResources"):
                assert answer.error.startswith("invalid claim reference"), answer.error
    assert bed.prepared() == prepared, "the plugin holds other claims than it answered"


def structured_case(bed: Bed, version: str, op: str, refs) -> None:
    pb2 = VERSIONS[version]
    before = bed.prepared()
    request = getattr(pb2, op + "Request")(
        claims=[pb2.Claim(namespace=ns, name=name, uid=uid) for ns, name, uid in refs])
    try:
        response = bed.method(version, op)(request, timeout=30)
    except grpc.RpcError as err:
        raise AssertionError(f"{op} {refs!r} failed: {err.code()} {err.details()}") from None
    assert set(response.claims) == {uid for _, _, uid in refs}, "one answer per claim UID"
    expect(bed, op, refs, before, response.claims)
    cases["structured"] += 1
    # devices and CDI specs change only with the set of prepared claims (the plugin is the only
    # writer); a full check then, and every 100 calls anyway
    if bed.prepared() != before or cases["structured"] % 100 == 0:
        bed.check()


_payloads = st.one_of(st.binary(max_size=200), st.lists(st.sampled_from(
    [b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x00", b"\xff", b"\x80\x80", b"\x05abcde",
     b"\x0a\x7f", b"\x0a\x03\x0a\x01x"]), max_size=12).map(b"".join))


def raw_case(bed: Bed, version: str, op: str, payload: bytes) -> None:
    try:
        bed.method(version, op, raw=True)(payload, timeout=30)
    except grpc.RpcError as err:
        assert err.code() != grpc.StatusCode.UNKNOWN, f"unhandled exception: {err.details()}"
        assert err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), \
            f"{err.code()}: {err.details()}"
    cases["raw"] += 1
    if cases["raw"] % 100 == 0:   # random bytes cannot name a real claim's UID
        bed.check()


def fuzz_case(bed: Bed, case) -> None:
    kind, version, op, body = case
    if kind == "structured":
        structured_case(bed, version, op, body)
    else:
        raw_case(bed, version, op, body)
    cases["count"] += 1
    for show in shown:
        show.tick(cases["count"])


def requests(bed: Bed) -> st.SearchStrategy:
    """One request per case: three in four structured, one in four raw bytes."""
    real = [(ns, name, uid) for uid, (ns, name) in bed.claims.items()]
    versions, methods = st.sampled_from(list(VERSIONS)), st.sampled_from(METHODS)
    structured = st.tuples(st.just("structured"), versions, methods,
                           st.lists(claim_refs(real), max_size=4))
    raw = st.tuples(st.just("raw"), versions, methods, _payloads)
    return st.sampled_from([structured, structured, structured, raw]).flatmap(lambda kind: kind)


@pytest.fixture
def quiet():
    """Every bad claim logs a warning: not needed here, and slow at this volume."""
    logger = logging.getLogger("mock_accel")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def test_fuzz_grpc(bed, progress, quiet):
    show = progress("fuzz gRPC", FUZZ_EXAMPLES)
    shown.append(show)
    started = time.monotonic()

    @fuzz_seeded
    @given(case=requests(bed))
    def fuzz_grpc(case):
        fuzz_case(bed, case)

    try:
        fuzz_grpc()
    finally:
        shown.clear()
    took, count = time.monotonic() - started, cases["count"]
    show.say(f"gRPC: {count} requests in {took:.1f} s ({took / max(count, 1) * 1000:.2f} ms "
             f"each): {cases['structured']} structured, {cases['raw']} raw; "
             f"{cases['prepared']} claims prepared, {cases['errors']} per-claim errors")
    assert count >= FUZZ_EXAMPLES and cases["raw"] > FUZZ_EXAMPLES // 10
    assert bed.node.plugin._servers and bed.node.thread.is_alive()
    bed.check()
