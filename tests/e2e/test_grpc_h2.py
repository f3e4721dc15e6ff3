#!/usr/bin/python3
"""The gRPC door over HTTP/2 end to end: the real nanasqlite-server on
loopback, called by grpcio (Debian's python3-grpcio, the C-core gRPC stack)
through stubs that protoc and grpc_python_plugin generate from proto/ at
test time (tests/interop/build-grpcio-stubs.sh), over TLS on the server's
TCP port (ALPN h2, the test CA, a client certificate for mTLS) and over the
plaintext h2c listener (--h2c), and by aql_h2_client
(tests/interop/aql_h2_client.go, grpc-go from Debian, built offline). What
HTTP/2 writes is read back over HTTP/3 by grpc_h3_client
(tests/interop/grpc_h3_client.go) and the other way round.

Run it with /usr/bin/python3 (grpcio is Debian's, for the system Python).
Each test checks that the server is alive afterwards and that its log has
no sanitizer report.

Usage: test_grpc_h2.py --bin-dir DIR --build-dir DIR [--tmp DIR] [TEST...]
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

try:
    import grpc  # noqa: E402
except ImportError:  # pragma: no cover - reported by main()
    grpc = None

ARGS = None
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H3_CLIENT = None  # grpc_h3_client (quic-go)
GO_CLIENT = None  # aql_h2_client (grpc-go)
SANITIZED = os.environ.get("NANA_SANITIZED") == "1"

# The generated modules (set by setup()).
npb = npb_grpc = aql = aql_grpc = qpb = tpb = epb = amaters = amaters_grpc = None
hpb = hpb_grpc = rpb = rpb_grpc = None

SECRET_A = b"alice-secret-0123456789abcdef-0123456789"
SECRET_R = b"reader-secret-0123456789abcdef-012345678"
NANA = "/nanasqlite.v1.NanaSQLite/"
SERVICES = ["AmateRS", "amaters.aql.AqlService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection", "nanasqlite.v1.NanaSQLite"]


# ---- tokens ---------------------------------------------------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret):
    """An HS256 token of |claims|, written here independently of the server."""
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    c = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64url(mac)}"


def token(sub="alice", secret=SECRET_A, ttl=600, **claims):
    return jwt({"sub": sub, "exp": int(time.time()) + ttl, **claims}, secret)


def bearer(tok):
    return (("authorization", "Bearer " + tok),)


# ---- the server ----------------------------------------------------------------------

def free_tcp_port():
    """A TCP port free on 127.0.0.1 now (for --h2c)."""
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class H2Server(Server):
    """A server with the accounts these tests use, a client CA and an h2c
    listener: alice (key nana, token secret), reader (read-only, token
    secret), bob (key only) and certy (a client certificate)."""

    def __init__(self, name, flags=(), h2c=True):
        super().__init__("h2-" + name, keys=("nana", "reader", "bob"))
        self.run_tool("nanasqlite-cert-gen", "--client", "certy")
        out = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cert-gen"), "--fingerprint",
                              "certy.pem"], cwd=self.dir, capture_output=True, text=True,
                             timeout=60, check=True)
        fps = json.loads("{" + out.stdout.replace("\n", "") + "}")
        for path, secret in (("alice.jwt", SECRET_A), ("reader.jwt", SECRET_R)):
            full = os.path.join(self.dir, path)
            with open(full, "wb") as f:
                f.write(secret)
            os.chmod(full, 0o600)
        doc = {"accounts": [
            {"name": "alice", "public_key": self.pub("nana"), "jwt_secret_file": "alice.jwt"},
            {"name": "reader", "public_key": self.pub("reader"), "read_only": True,
             "jwt_secret_file": "reader.jwt"},
            {"name": "bob", "public_key": self.pub("bob")},
            {"name": "certy", "login": "certificate", **fps}]}
        with open(os.path.join(self.dir, "accounts.json"), "w") as f:
            json.dump(doc, f)
        self.h2c_port = free_tcp_port() if h2c else None
        self.flags = ["--accounts", "accounts.json", "--client-ca", "ca.pem",
                      "--ban-failures", "1000", *flags]
        if h2c:
            self.flags += ["--h2c", f"127.0.0.1:{self.h2c_port}"]
        with open(os.path.join(self.dir, "ca.pem"), "rb") as f:
            self.ca = f.read()

    def channel(self, tls=True, cert=False):
        """A grpcio channel of its own (its own connection: grpcio shares
        connections between channels unless told not to) over TLS or h2c;
        |cert|: with certy's client certificate."""
        opts = [("grpc.use_local_subchannel_pool", 1),
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)]
        if not tls:
            return grpc.insecure_channel(f"127.0.0.1:{self.h2c_port}", opts)
        key = chain = None
        if cert:
            with open(os.path.join(self.dir, "certy-key.pem"), "rb") as f:
                key = f.read()
            with open(os.path.join(self.dir, "certy.pem"), "rb") as f:
                chain = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=key,
                                             certificate_chain=chain)
        opts.append(("grpc.ssl_target_name_override", "localhost"))
        return grpc.secure_channel(f"127.0.0.1:{self.port}", creds, opts)


class Door:
    """One grpcio connection to |s| with the stubs of every service."""

    def __init__(self, s, tls=True, cert=False, login=True):
        self.s, self.tls = s, tls
        self.ch = s.channel(tls, cert)
        self.health = hpb_grpc.HealthStub(self.ch)
        self.reflect = rpb_grpc.ServerReflectionStub(self.ch)
        self.nana = npb_grpc.NanaSQLiteStub(self.ch)
        self.aql = aql_grpc.AqlServiceStub(self.ch)
        self.amaters = amaters_grpc.AmateRSStub(self.ch)
        self.name = "TLS" if tls else "h2c"
        if login:
            st, msg, _, _ = rpc(self.nana.Get, npb.GetRequest(key="login"),
                                metadata=bearer(token()))
            check(st == grpc.StatusCode.OK, f"{self.name}: a bearer token logs in", (st, msg))

    def raw(self, path):
        """A unary call of |path| that sends and returns bytes as they are."""
        return self.ch.unary_unary(path, request_serializer=None, response_deserializer=None)

    def close(self):
        self.ch.close()


def rpc(fn, req, **kw):
    """One unary call: (status code, details, response or None, trailing metadata dict)."""
    kw.setdefault("timeout", 30)
    try:
        resp, call = fn.with_call(req, **kw)
        return grpc.StatusCode.OK, "", resp, dict(call.trailing_metadata() or ())
    except grpc.RpcError as e:
        return e.code(), e.details(), None, dict(e.trailing_metadata() or ())


def ok(r):
    return r[0] == grpc.StatusCode.OK


def finish(s):
    check(s.alive(), "server alive")
    s.stop()


def both(name, fn):
    """Runs |fn|(server, door) on a TLS and an h2c connection to one server."""
    s = H2Server(name).start()
    try:
        for tls in (True, False):
            d = Door(s, tls)
            try:
                fn(s, d)
            finally:
                d.close()
    finally:
        finish(s)


# ---- AQL messages --------------------------------------------------------------------

def key(k):
    return tpb.Key(data=k.encode() if isinstance(k, str) else k)


def blob(v):
    return tpb.CipherBlob(data=v.encode() if isinstance(v, str) else v)


def q_set(coll, k, v):
    return qpb.Query(set=qpb.SetQuery(collection=coll, key=key(k), value=blob(v)))


def q_get(coll, k):
    return qpb.Query(get=qpb.GetQuery(collection=coll, key=key(k)))


def q_del(coll, k):
    return qpb.Query(delete=qpb.DeleteQuery(collection=coll, key=key(k)))


def q_range(coll, start, end, limit=None):
    r = qpb.RangeQuery(collection=coll, start=key(start), end=key(end))
    if limit is not None:
        r.limit = limit
    return qpb.Query(range=r)


def cmp(op, field, value):
    """A comparison predicate: |op| eq, gt, lt, gte or lte; |value| JSON text."""
    cls = {"eq": tpb.EqPredicate, "gt": tpb.GtPredicate, "lt": tpb.LtPredicate,
           "gte": tpb.GtePredicate, "lte": tpb.LtePredicate}[op]
    return tpb.Predicate(**{op: cls(column=tpb.ColumnRef(name=field), value=blob(value))})


def q_filter(coll, pred):
    return qpb.Query(filter=qpb.FilterQuery(collection=coll, predicate=pred))


def q_update_add(coll, pred, field, n):
    up = tpb.Update(add=tpb.AddUpdate(column=tpb.ColumnRef(name=field), value=blob(str(n))))
    return qpb.Query(update=qpb.UpdateQuery(collection=coll, predicate=pred, updates=[up]))


def qreq(q, rid=None, timeout_ms=None):
    r = aql.QueryRequest(query=q)
    if rid is not None:
        r.request_id = rid
    if timeout_ms is not None:
        r.timeout_ms = timeout_ms
    return r


def single(resp):
    """A get's value bytes (None: no value)."""
    if resp is None or resp.WhichOneof("response") != "result":
        return None
    s = resp.result.single
    return s.value.data if s.HasField("value") else None


def affected(resp):
    if resp is None or resp.WhichOneof("response") != "result":
        return None
    return resp.result.success.affected_rows


def pairs(resp):
    if resp is None or resp.WhichOneof("response") != "result":
        return None
    return [(kv.key.data.decode(), kv.value.data) for kv in resp.result.multi.values]


def err_name(resp):
    if resp is None or resp.WhichOneof("response") != "error":
        return None
    return epb.ErrorCode.Name(resp.error.code)


# ---- health and reflection -----------------------------------------------------------

def test_health_and_reflection():
    def run(s, d):
        n = d.name
        r = rpc(d.health.Check, hpb.HealthCheckRequest())
        check(ok(r) and r[2].status == hpb.HealthCheckResponse.SERVING, f"{n}: Check ''", r)
        for svc in SERVICES:
            r = rpc(d.health.Check, hpb.HealthCheckRequest(service=svc))
            check(ok(r) and r[2].status == hpb.HealthCheckResponse.SERVING,
                  f"{n}: Check {svc}", r)
        r = rpc(d.health.Check, hpb.HealthCheckRequest(service="no.such.Service"))
        check(r[0] == grpc.StatusCode.NOT_FOUND, f"{n}: Check of an unknown service: NOT_FOUND",
              r)
        w = d.health.Watch(hpb.HealthCheckRequest(), timeout=30)
        first = next(w)
        check(first.status == hpb.HealthCheckResponse.SERVING, f"{n}: Watch: SERVING first",
              first)
        w.cancel()
        try:
            next(w)
            check(False, f"{n}: Watch ended by cancel()")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.CANCELLED, f"{n}: Watch cancelled", e.code())
        # Reflection, one stream with five questions.
        reqs = [rpb.ServerReflectionRequest(list_services="*"),
                rpb.ServerReflectionRequest(file_containing_symbol="nanasqlite.v1.NanaSQLite"),
                rpb.ServerReflectionRequest(
                    file_containing_symbol="amaters.aql.AqlService.ExecuteQuery"),
                rpb.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
                rpb.ServerReflectionRequest(file_containing_symbol="no.Such")]
        answers = list(d.reflect.ServerReflectionInfo(iter(reqs), timeout=30))
        check(len(answers) == 5, f"{n}: reflection: five answers", len(answers))
        if len(answers) != 5:
            return
        names = sorted(x.name for x in answers[0].list_services_response.service)
        check(names == SERVICES, f"{n}: list_services", names)
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in answers[1].file_descriptor_response.file_descriptor_proto]
        check([f.name for f in files] == ["nanasqlite/v1/nanasqlite.proto"] and
              [x.name for x in files[0].service] == ["NanaSQLite"],
              f"{n}: file_containing_symbol of the NanaSQLite service", [f.name for f in files])
        aqlfiles = sorted(descriptor_pb2.FileDescriptorProto.FromString(b).name
                          for b in answers[2].file_descriptor_response.file_descriptor_proto)
        check(aqlfiles == ["amaters/aql.proto", "amaters/errors.proto", "amaters/query.proto",
                           "amaters/types.proto"],
              f"{n}: a method's file with the files it imports", aqlfiles)
        hf = [descriptor_pb2.FileDescriptorProto.FromString(b).package
              for b in answers[3].file_descriptor_response.file_descriptor_proto]
        check(hf == ["grpc.health.v1"], f"{n}: file_by_filename", hf)
        check(answers[4].WhichOneof("message_response") == "error_response" and
              answers[4].error_response.error_code == 5, f"{n}: an unknown symbol: NOT_FOUND",
              answers[4])
        # A client that knows only what reflection told it: messages built
        # from the served descriptors, sent and read as bytes.
        if files:
            pool = descriptor_pool.DescriptorPool()
            pool.Add(files[0])
            fac = message_factory.MessageFactory(pool)
            SetReq = fac.GetPrototype(pool.FindMessageTypeByName("nanasqlite.v1.SetRequest"))
            GetReq = fac.GetPrototype(pool.FindMessageTypeByName("nanasqlite.v1.GetRequest"))
            GetRep = fac.GetPrototype(pool.FindMessageTypeByName("nanasqlite.v1.GetReply"))
            r = rpc(d.raw(NANA + "Set"),
                    SetReq(key="reflected", value_json='"by reflection"').SerializeToString())
            check(ok(r), f"{n}: Set with a message from the served descriptor", r)
            r = rpc(d.raw(NANA + "Get"), GetReq(key="reflected").SerializeToString())
            got = GetRep.FromString(r[2]) if ok(r) else None
            check(got is not None and got.found and got.value_json == '"by reflection"',
                  f"{n}: Get read with the served descriptor", got)
    both("health", run)


# ---- the NanaSQLite service ----------------------------------------------------------

BIG_JSON = json.dumps(["v" * 1000 + str(i) for i in range(300)])


def test_nanasqlite_methods():
    def run(s, d):
        n, st = d.name, d.nana
        r = rpc(st.Set, npb.SetRequest(key="a", value_json='{"x": [1, 2]}'))
        check(ok(r), f"{n}: Set", r)
        for i in (1, 2):  # the second from the cache
            r = rpc(st.Get, npb.GetRequest(key="a"))
            check(ok(r) and r[2].found and json.loads(r[2].value_json) == {"x": [1, 2]},
                  f"{n}: Get #{i}", r)
        r = rpc(st.Get, npb.GetRequest(key="missing"))
        check(ok(r) and not r[2].found and r[2].value_json == "",
              f"{n}: Get of an absent key: found false, OK", r)
        r = rpc(st.BatchSet, npb.BatchSetRequest(entries=[
            npb.KeyValue(key="b", value_json="2"), npb.KeyValue(key="c", value_json='"three"')]))
        check(ok(r), f"{n}: BatchSet", r)
        r = rpc(st.BatchGet, npb.BatchGetRequest(keys=["b", "nope", "c"]))
        got = [(i.key, i.found, i.value_json) for i in r[2].items] if ok(r) else r
        check(got == [("b", True, "2"), ("nope", False, ""), ("c", True, '"three"')],
              f"{n}: BatchGet in the request's order", got)
        r = rpc(st.Delete, npb.DeleteRequest(key="b"))
        check(ok(r) and r[2].existed, f"{n}: Delete: existed", r)
        r = rpc(st.Delete, npb.DeleteRequest(key="b"))
        check(ok(r) and not r[2].existed, f"{n}: Delete again: existed false", r)
        r = rpc(st.Call, npb.CallRequest(method="__len__"))
        # "a", "c", the login's key is only read, plus what the other door wrote.
        check(ok(r) and r[2].WhichOneof("outcome") == "result_json" and
              int(r[2].result_json) >= 2, f"{n}: Call __len__", r)
        r = rpc(st.Call, npb.CallRequest(method="get", args_json='["zz", 7]'))
        check(ok(r) and r[2].result_json == "7", f"{n}: Call get with a default", r)
        r = rpc(st.Call, npb.CallRequest(method="__getitem__", args_json='["zz"]'))
        check(ok(r) and r[2].WhichOneof("outcome") == "error" and r[2].error.type == "KeyError",
              f"{n}: Call of an absent key: CallError KeyError, status OK", r)
        r = rpc(st.Call, npb.CallRequest(method="keys", kwargs_json="{}"))
        check(ok(r) and {"a", "c"} <= set(json.loads(r[2].result_json or "[]")),
              f"{n}: Call keys", r)
        r = rpc(st.Set, npb.SetRequest(key="t", value_json="5", table="other"))
        r2 = rpc(st.Get, npb.GetRequest(key="t", table="other"))
        r3 = rpc(st.Get, npb.GetRequest(key="t"))
        check(ok(r) and ok(r2) and r2[2].value_json == "5" and ok(r3) and not r3[2].found,
              f"{n}: a table of its own", (r, r2, r3))
        r = rpc(st.Set, npb.SetRequest(key="d", value_json="1", db="second.db"))
        r2 = rpc(st.Get, npb.GetRequest(key="d", db="second.db"))
        r3 = rpc(st.Get, npb.GetRequest(key="d"))
        check(ok(r) and ok(r2) and r2[2].value_json == "1" and ok(r3) and not r3[2].found,
              f"{n}: a database of its own (db)", (r, r2, r3))
        r = rpc(st.Set, npb.SetRequest(key="big", value_json=BIG_JSON))
        r2 = rpc(st.Get, npb.GetRequest(key="big"))
        check(ok(r) and ok(r2) and r2[2].value_json == BIG_JSON,
              f"{n}: a 300 KB value both ways (many DATA frames)", r[:2])
    both("methods", run)


# ---- AQL -----------------------------------------------------------------------------

def test_aql_methods():
    def run(s, d):
        n, st = d.name, d.aql
        c = "kinds_" + n.lower()
        r = rpc(st.HealthCheck, aql.HealthCheckRequest())
        check(ok(r) and r[2].status == aql.HEALTH_SERVING, f"{n}: HealthCheck", r)
        r = rpc(st.GetServerInfo, aql.ServerInfoRequest())
        check(ok(r) and r[2].version in list(r[2].supported_versions),
              f"{n}: GetServerInfo", r)
        res = [rpc(st.ExecuteQuery, qreq(q, rid=f"id{i}")) for i, q in enumerate([
            q_set(c, "a", '{"n": 1}'), q_get(c, "a"), q_get(c, "absent"),
            q_set(c, "b", '{"n": 2}'), q_set(c, "c", b"\x00\xffraw"),
            q_range(c, "a", "c"), q_filter(c, cmp("gte", "n", "2")),
            q_update_add(c, cmp("lte", "n", "2"), "n", 10), q_get(c, "b"),
            q_del(c, "a"), q_get(c, "a"), q_del(c, "a")])]
        check(all(ok(r) for r in res), f"{n}: ExecuteQuery: every status OK",
              [r[0] for r in res])
        got = [r[2] for r in res]
        check(affected(got[0]) == 1 and single(got[1]) == b'{"n": 1}' and
              single(got[2]) is None, f"{n}: set, get, get of an absent key", got[:3])
        check(single(got[1]) and got[1].result.single.value.metadata.size == 8,
              f"{n}: a get's metadata", got[1])
        check(pairs(got[5]) == [("a", b'{"n": 1}'), ("b", b'{"n": 2}')], f"{n}: range [a, c)",
              got[5])
        check(pairs(got[6]) == [("b", b'{"n": 2}')], f"{n}: filter n >= 2 (raw bytes skipped)",
              got[6])
        check(affected(got[7]) == 2 and json.loads(single(got[8]) or b"null") == {"n": 12},
              f"{n}: update adds to both matches", (got[7], got[8]))
        check(affected(got[9]) == 1 and single(got[10]) is None and affected(got[11]) == 0,
              f"{n}: delete, get after it, delete again", got[9:])
        check([g.request_id for g in got] == [f"id{i}" for i in range(len(got))],
              f"{n}: request_id echoed", [g.request_id for g in got])
        r = rpc(st.ExecuteQuery, qreq(q_get(c, "c")))
        check(ok(r) and single(r[2]) == b"\x00\xffraw", f"{n}: bytes that are not JSON read back",
              r)
        r = rpc(st.ExecuteQuery, qreq(q_get("bad-name", "k")))
        check(ok(r) and err_name(r[2]) == "ERROR_VALIDATION_INVALID_COLLECTION",
              f"{n}: a bad collection: an ErrorResponse, status OK", r)
        # ExecuteBatch: all or nothing.
        r = rpc(st.ExecuteBatch, aql.BatchRequest(queries=[q_set(c, "x1", "1"),
                                                           q_set(c, "x2", "2"),
                                                           q_get(c, "x1")]))
        check(ok(r) and r[2].WhichOneof("response") == "results" and
              [x.WhichOneof("result") for x in r[2].results.results] ==
              ["success", "success", "single"] and
              r[2].results.results[2].single.value.data == b"1", f"{n}: ExecuteBatch", r)
        r = rpc(st.ExecuteBatch, aql.BatchRequest(queries=[q_set(c, "x3", "3"),
                                                           q_set("bad-name", "k", "1")]))
        check(ok(r) and r[2].WhichOneof("response") == "error" and
              r[2].error.message.startswith("query 1:"), f"{n}: a failing batch", r)
        r = rpc(st.ExecuteQuery, qreq(q_get(c, "x3")))
        check(ok(r) and single(r[2]) is None, f"{n}: the failed batch left nothing", r)
        # ExecuteStream over 2,000 rows of ~200 bytes: several batches.
        for b in range(2):
            r = rpc(st.ExecuteBatch, aql.BatchRequest(queries=[
                q_set("s", f"k{i:05d}", json.dumps({"i": i, "pad": "p" * 200}))
                for i in range(b * 1000, b * 1000 + 1000)]))
            check(ok(r) and r[2].WhichOneof("response") == "results", f"{n}: stream rows", r[0])
        msgs = list(st.ExecuteStream(qreq(q_range("s", "k00000", "k99999")), timeout=60))
        batches = [m for m in msgs if m.WhichOneof("chunk") == "batch"]
        ks = [kv.key.data.decode() for m in batches for kv in m.batch.values]
        check(len(batches) >= 4 and ks == [f"k{i:05d}" for i in range(2000)],
              f"{n}: ExecuteStream: every key in order, in batches", (len(batches), len(ks)))
        check([m.sequence for m in msgs] == list(range(len(msgs))) and
              msgs[-1].WhichOneof("chunk") == "end" and msgs[-1].end.total_count == 2000 and
              not batches[-1].batch.has_more and all(b.batch.has_more for b in batches[:-1]),
              f"{n}: ExecuteStream: sequences, has_more, StreamEnd", msgs[-1])
        msgs = list(st.ExecuteStream(qreq(q_get("s", "k00001")), timeout=30))
        check(len(msgs) == 1 and msgs[0].WhichOneof("chunk") == "error",
              f"{n}: ExecuteStream of a get: one error message", msgs)
        # ExecuteInteractive: every query sent at once, answered in order.
        # Queries of one stream may run at once, so the gets read what a
        # stream before them wrote.
        count = (2000 if SANITIZED else 10000) if d.tls else 500
        coll = "ia_" + n.lower()

        def gen(kind):
            for i in range(count):
                yield qreq(q_set(coll, f"i{i:05d}", str(i)) if kind == "set"
                           else q_get(coll, f"i{i:05d}"), rid=f"{kind}{i}")
        for kind in ("set", "get"):
            t0 = time.time()
            try:
                answers = list(st.ExecuteInteractive(gen(kind), timeout=120))
            except grpc.RpcError as e:
                answers = []
                check(False, f"{n}: ExecuteInteractive of {count} {kind}s", (e.code(), e.details()))
            ms = int((time.time() - t0) * 1000)
            check(len(answers) == count and [a.request_id for a in answers] ==
                  [f"{kind}{i}" for i in range(count)],
                  f"{n}: ExecuteInteractive: {count} pipelined {kind}s answered in order "
                  f"({ms} ms)", len(answers))
            if kind == "set":
                check(all(affected(a) == 1 for a in answers), f"{n}: every set stored")
            else:
                check(all(single(a) == str(i).encode() for i, a in enumerate(answers)),
                      f"{n}: every get read its value")
            # The token again: logs in a connection grpcio had to open anew
            # (if the server closed this one, the check above has failed).
            rpc(d.nana.Get, npb.GetRequest(key="login"), metadata=bearer(token()))
        # AmateRS: query_bytes carries a QueryRequest.
        r = rpc(d.amaters.Execute, amaters.QueryRequest(
            query_bytes=qreq(q_set(c, "am", '"via AmateRS"'), rid="am1").SerializeToString()))
        inner = aql.QueryResponse.FromString(r[2].result_bytes) if ok(r) else None
        check(inner is not None and affected(inner) == 1 and inner.request_id == "am1",
              f"{n}: AmateRS/Execute", r)
        reqs = [amaters.QueryRequest(query_bytes=qreq(q, rid=f"a{i}").SerializeToString())
                for i, q in enumerate([q_get(c, "am"), q_set(c, "am2", "2"), q_get(c, "none")])]
        out = [aql.QueryResponse.FromString(m.result_bytes)
               for m in d.amaters.ExecuteStream(iter(reqs), timeout=30)]
        check(len(out) == 3 and single(out[0]) == b'"via AmateRS"' and affected(out[1]) == 1 and
              single(out[2]) is None and [o.request_id for o in out] == ["a0", "a1", "a2"],
              f"{n}: AmateRS/ExecuteStream", out)
    both("aql", run)


def test_stream_cancel():
    s = H2Server("streamcancel").start()
    try:
        d = Door(s)
        for b in range(8):
            r = rpc(d.aql.ExecuteBatch, aql.BatchRequest(queries=[
                q_set("big", f"k{i:06d}", json.dumps({"pad": "p" * 300}))
                for i in range(b * 1000, b * 1000 + 1000)]))
            check(ok(r) and r[2].WhichOneof("response") == "results", "rows for the stream", r[0])
        # 2.6 MB: more than the server's window, so it is mid-stream at the cancel.
        it = d.aql.ExecuteStream(qreq(q_range("big", "k", "l")), timeout=60)
        m = next(it)
        check(m.WhichOneof("chunk") == "batch" and m.batch.has_more, "the stream's first batch",
              m.WhichOneof("chunk"))
        it.cancel()
        try:
            for _ in it:
                pass
            check(False, "the cancelled stream ended with CANCELLED")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.CANCELLED, "the cancelled stream: CANCELLED",
                  e.code())
        # An interactive stream cancelled with queries still coming.
        stop = threading.Event()

        def endless():
            i = 0
            while not stop.is_set() and i < 100000:
                yield qreq(q_get("big", f"k{i % 8000:06d}"), rid=str(i))
                i += 1
        it = d.aql.ExecuteInteractive(endless(), timeout=60)
        got = [next(it) for _ in range(100)]
        it.cancel()
        stop.set()
        check(all(single(g) for g in got), "an interactive stream answers before its cancel")
        r = rpc(d.aql.ExecuteQuery, qreq(q_get("big", "k000001")))
        check(ok(r) and single(r[2]), "the connection serves after the cancels", r)
        d.close()
        d = Door(s, tls=False)
        r = rpc(d.nana.Call, npb.CallRequest(method="__len__"))
        check(ok(r), "h2c serves after the cancels", r)
        d.close()
    finally:
        finish(s)


# ---- logins --------------------------------------------------------------------------

def test_logins():
    s = H2Server("logins").start()
    try:
        for tls in (True, False):
            n = "TLS" if tls else "h2c"
            d = Door(s, tls, login=False)
            r = rpc(d.nana.Get, npb.GetRequest(key="k"))
            check(r[0] == grpc.StatusCode.UNAUTHENTICATED, f"{n}: no login: UNAUTHENTICATED", r)
            r = rpc(d.aql.ExecuteQuery, qreq(q_get("", "k")))
            check(r[0] == grpc.StatusCode.UNAUTHENTICATED, f"{n}: AQL without login", r)
            for what, tok, msg in (
                    ("expired", token(ttl=-1), "the token expired"),
                    ("a wrong secret", token(secret=SECRET_R), "authentication failed"),
                    ("an account without a secret", token(sub="bob"), "authentication failed"),
                    ("an unknown account", token(sub="zed"), "authentication failed"),
                    ("malformed", token() + "=", "base64url")):
                r = rpc(d.nana.Get, npb.GetRequest(key="k"), metadata=bearer(tok))
                check(r[0] == grpc.StatusCode.UNAUTHENTICATED and msg in r[1] and tok not in r[1],
                      f"{n}: a token {what}: UNAUTHENTICATED ({msg})", r[:2])
            r = rpc(d.nana.Set, npb.SetRequest(key="who", value_json='"alice"'),
                    metadata=bearer(token()))
            check(ok(r), f"{n}: a good token logs in", r)
            r = rpc(d.nana.Get, npb.GetRequest(key="who"))
            check(ok(r) and r[2].found, f"{n}: a later call needs no token", r)
            r = rpc(d.nana.Get, npb.GetRequest(key="who"),
                    metadata=bearer(token(sub="reader", secret=SECRET_R)))
            check(r[0] == grpc.StatusCode.UNAUTHENTICATED and "another account" in r[1],
                  f"{n}: another account's token on a logged-in connection", r[:2])
            d.close()
            # Read-only account; a token's roles.
            d = Door(s, tls, login=False)
            md = bearer(token(sub="reader", secret=SECRET_R))
            r = rpc(d.nana.Get, npb.GetRequest(key="who"), metadata=md)
            check(ok(r) and r[2].found, f"{n}: the read-only account reads", r)
            r = rpc(d.nana.Set, npb.SetRequest(key="who", value_json="1"))
            check(r[0] == grpc.StatusCode.PERMISSION_DENIED,
                  f"{n}: the read-only account's Set: PERMISSION_DENIED", r[:2])
            r = rpc(d.aql.ExecuteQuery, qreq(q_set("", "who", "1")))
            check(ok(r) and err_name(r[2]) == "ERROR_AUTH_INSUFFICIENT_PERMISSIONS",
                  f"{n}: the read-only account's AQL set", r)
            d.close()
            d = Door(s, tls, login=False)
            r = rpc(d.nana.Get, npb.GetRequest(key="who"), metadata=bearer(token(roles=[])))
            check(ok(r), f"{n}: a token with roles [] reads", r)
            r = rpc(d.nana.Delete, npb.DeleteRequest(key="who"))
            check(r[0] == grpc.StatusCode.PERMISSION_DENIED,
                  f"{n}: roles []: a write is PERMISSION_DENIED", r[:2])
            d.close()
        # h2c has no TLS exporter to sign: signature metadata cannot log in there.
        d = Door(s, tls=False, login=False)
        r = rpc(d.nana.Get, npb.GetRequest(key="who"), metadata=(
            ("nana-account", "alice"), ("nana-timestamp", str(int(time.time()))),
            ("nana-signature-bin", b"\x01" * 64)))
        check(r[0] == grpc.StatusCode.UNAUTHENTICATED, "h2c: signature metadata is refused",
              r[:2])
        d.close()
        # Mutual TLS: certy logs in by its certificate alone.
        d = Door(s, cert=True, login=False)
        r = rpc(d.nana.Set, npb.SetRequest(key="by-cert", value_json="1"))
        check(ok(r), "mTLS: a certificate account's Set with no metadata", r)
        r = rpc(d.aql.ExecuteQuery, qreq(q_get("", "by-cert")))
        check(ok(r) and single(r[2]) == b"1", "mTLS: and an AQL get", r)
        d.close()
        d = Door(s, login=False)
        r = rpc(d.nana.Get, npb.GetRequest(key="by-cert"))
        check(r[0] == grpc.StatusCode.UNAUTHENTICATED, "without the certificate: refused", r)
        d.close()
        # A short token's login ends at its exp.
        d = Door(s, tls=False, login=False)
        short = int(time.time()) + 2
        r = rpc(d.nana.Get, npb.GetRequest(key="who"),
                metadata=bearer(jwt({"sub": "alice", "exp": short}, SECRET_A)))
        check(ok(r), "a 2 s token logs in", r)
        time.sleep(max(0.0, short + 1.1 - time.time()))
        r = rpc(d.nana.Get, npb.GetRequest(key="who"))
        check(r[0] == grpc.StatusCode.UNAUTHENTICATED and r[1] == "the token expired",
              "after its exp: the token expired", r[:2])
        r = rpc(d.nana.Get, npb.GetRequest(key="who"), metadata=bearer(token()))
        check(ok(r), "a fresh token goes on", r)
        d.close()
        log = s.log_text()
        check(SECRET_A.decode() not in log and "Bearer" not in log, "no secret or token logged")
    finally:
        finish(s)


# ---- errors and metadata -------------------------------------------------------------

def test_statuses_and_metadata():
    def run(s, d):
        n = d.name
        C = grpc.StatusCode
        cases = [
            ("an unknown method", d.raw(NANA + "Nope"), b"", C.UNIMPLEMENTED),
            ("an unknown service", d.raw("/no.Such/Method"), b"", C.UNIMPLEMENTED),
            ("a request that is not protobuf", d.raw(NANA + "Get"), b"\xff\xff", C.INTERNAL),
            ("a key that is not UTF-8", d.raw(NANA + "Get"), b"\x0a\x02\xff\xfe",
             C.INVALID_ARGUMENT),
            ("a value that is not JSON", d.nana.Set,
             npb.SetRequest(key="k", value_json="{no"), C.INVALID_ARGUMENT),
            ("a bad table name", d.nana.Get, npb.GetRequest(key="k", table="no-such!"),
             C.INVALID_ARGUMENT),
            ("a message over 4 MiB", d.nana.Set,
             npb.SetRequest(key="k", value_json='"' + "x" * (4 << 20) + '"'),
             C.RESOURCE_EXHAUSTED),
            ("a header over 8 KiB", d.nana.Get, npb.GetRequest(key="k"), C.RESOURCE_EXHAUSTED),
            ("an unknown health service", d.health.Check,
             hpb.HealthCheckRequest(service="x"), C.NOT_FOUND),
        ]
        for what, fn, req, want in cases:
            md = (("x-big", "v" * 9000),) if "header" in what else ()
            r = rpc(fn, req, metadata=md)
            check(r[0] == want, f"{n}: {what}: {want.name}", r[:2])
            r = rpc(d.health.Check, hpb.HealthCheckRequest())
            check(ok(r), f"{n}: the connection serves after {what}", r[:2])
        # Metadata: nana-db picks the AQL database, -bin values are base64.
        md = (("nana-db", "meta.db"), ("x-trace-bin", b"\x00\x01\xff"), ("x-note", "hi"))
        r = rpc(d.aql.ExecuteQuery, qreq(q_set("", "m", '"in meta.db"')), metadata=md)
        check(ok(r) and affected(r[2]) == 1, f"{n}: AQL with nana-db", r)
        r = rpc(d.nana.Get, npb.GetRequest(key="m", db="meta.db"))
        r2 = rpc(d.nana.Get, npb.GetRequest(key="m"))
        check(ok(r) and r[2].value_json == '"in meta.db"' and ok(r2) and not r2[2].found,
              f"{n}: it went to meta.db, not the default database", (r, r2))
        r = rpc(d.aql.ExecuteQuery, qreq(q_get("", "m")), metadata=(("nana-db", "../x.db"),))
        check(ok(r) and err_name(r[2]) is not None or r[0] != C.OK,
              f"{n}: nana-db outside the database folder is refused", r)
        # nana-proof: 1 -> a server proof in the trailers, over the bytes as sent.
        req = qreq(q_get("", "m")).SerializeToString()
        try:
            body, call = d.raw("/amaters.aql.AqlService/ExecuteQuery").with_call(
                req, metadata=(("nana-proof", "1"), ("nana-db", "meta.db")), timeout=30)
            trailers = dict(call.trailing_metadata() or ())
        except grpc.RpcError as e:
            body, trailers = None, {}
            check(False, f"{n}: ExecuteQuery with nana-proof", e)
        proof = trailers.get("nana-proof-bin", b"")
        check(len(proof) == 157 and proof[:4] == b"NSP1", f"{n}: the nana-proof-bin trailer",
              proof.hex())
        if body is not None and proof:
            for name, data in (("q.bin", req), ("r.bin", body)):
                with open(os.path.join(s.dir, name), "wb") as f:
                    f.write(data)
            p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "verify-proof",
                                "--public-key", "proof.pub", "--proof-hex", proof.hex(),
                                "--query", "q.bin", "--result", "r.bin"], cwd=s.dir,
                               capture_output=True, text=True, timeout=30)
            check(p.returncode == 0 and json.loads(p.stdout or "{}").get("valid") is True,
                  f"{n}: nanasqlite-cli verify-proof accepts it", p.stdout + p.stderr)
    both("statuses", run)


# ---- deadlines and cancellation ------------------------------------------------------

def test_deadlines_and_cancel():
    s = H2Server("deadline", ["--test-worker-delay-ms", "400", "--workers", "1"]).start()
    try:
        for tls in (True, False):
            d = Door(s, tls)
            n = d.name
            C = grpc.StatusCode
            r = rpc(d.nana.Call, npb.CallRequest(method="__len__"), timeout=5)
            check(ok(r), f"{n}: a slow call within a 5 s deadline", r)
            t0 = time.time()
            r = rpc(d.nana.Call, npb.CallRequest(method="__len__"), timeout=0.1)
            ms = (time.time() - t0) * 1000
            check(r[0] == C.DEADLINE_EXCEEDED and ms < 390,
                  f"{n}: a 100 ms deadline on a 400 ms call: DEADLINE_EXCEEDED", (r[:2], ms))
            # The one worker busy with one batch (400 ms); a second batch with
            # a short deadline waits behind it and must never run.
            def bset(k, **kw):
                return d.nana.BatchSet.future(npb.BatchSetRequest(
                    entries=[npb.KeyValue(key=k, value_json="1")]), **kw)
            busy = bset(f"busy-{n}", timeout=10)
            time.sleep(0.05)
            late = bset(f"late-{n}", timeout=0.15)
            try:
                late.result()
                late_code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                late_code = e.code()
            check(late_code == C.DEADLINE_EXCEEDED, f"{n}: the queued write's deadline",
                  late_code)
            busy.result()
            # Cancelled while queued: never applied either.
            busy = bset(f"busy2-{n}", timeout=10)
            time.sleep(0.05)
            f = bset(f"cancelled-{n}", timeout=10)
            time.sleep(0.15)
            check(f.cancel(), f"{n}: cancel() of a queued write")
            busy.result()
            time.sleep(0.6)
            r = rpc(d.nana.BatchGet, npb.BatchGetRequest(
                keys=[f"busy-{n}", f"late-{n}", f"busy2-{n}", f"cancelled-{n}"]), timeout=10)
            got = [i.found for i in r[2].items] if ok(r) else r
            check(got == [True, False, True, False],
                  f"{n}: the expired and the cancelled writes never ran", got)
            # AQL: timeout_ms in the request, and grpc-timeout.
            r = rpc(d.aql.ExecuteQuery, qreq(q_get("", "x"), timeout_ms=50), timeout=10)
            check(ok(r) and err_name(r[2]) == "ERROR_COMPUTE_TIMEOUT",
                  f"{n}: AQL timeout_ms 50 on a slow worker: ERROR_COMPUTE_TIMEOUT", r)
            r = rpc(d.aql.ExecuteQuery, qreq(q_get("", "x")), timeout=0.1)
            check(r[0] == C.DEADLINE_EXCEEDED, f"{n}: AQL with a 100 ms grpc-timeout", r[:2])
            d.close()
    finally:
        finish(s)


# ---- HTTP/2 and HTTP/3 on one store --------------------------------------------------

def h3(s, calls):
    """Runs |calls| with grpc_h3_client on one HTTP/3 connection logged in as alice."""
    for c in calls:
        c.setdefault("messages", [])
    calls[0]["sign"] = {"account": "alice", "key": "nana_private.pem"}
    script = {"addr": f"127.0.0.1:{s.port}", "ca": "ca.pem", "calls": calls, "timeout_s": 30}
    p = subprocess.run([H3_CLIENT], input=json.dumps(script), capture_output=True, text=True,
                       cwd=s.dir, timeout=60)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    if p.returncode != 0 or len(lines) != len(calls) + 1:
        check(False, "grpc_h3_client ran", f"rc={p.returncode} {p.stderr[-2000:]}")
        return [{} for _ in calls]
    return lines[:-1]


def h3_msg(r, cls):
    m = r.get("messages") or []
    return cls.FromString(bytes.fromhex(m[0])) if r.get("grpc_status") == 0 and m else None


def test_h2_and_h3_share_the_data():
    s = H2Server("doors").start()
    try:
        for tls in (True, False):
            d = Door(s, tls)
            n = d.name
            v = json.dumps({"written over": n})
            r = rpc(d.nana.Set, npb.SetRequest(key=f"from-{n}", value_json=v))
            r2 = rpc(d.aql.ExecuteQuery, qreq(q_set("", f"aql-{n}", b"\x01bytes")))
            check(ok(r) and ok(r2), f"{n}: written over HTTP/2", (r[:2], r2[:2]))
            res = h3(s, [
                {"path": NANA + "Get",
                 "messages": [npb.GetRequest(key=f"from-{n}").SerializeToString().hex()]},
                {"path": "/amaters.aql.AqlService/ExecuteQuery",
                 "messages": [qreq(q_get("", f"aql-{n}")).SerializeToString().hex()]},
                {"path": NANA + "Set",
                 "messages": [npb.SetRequest(key=f"from-h3-{n}",
                                             value_json='"over HTTP/3"').SerializeToString().hex()]},
            ])
            g = h3_msg(res[0], npb.GetReply)
            check(g is not None and g.found and g.value_json == v,
                  f"{n}: read back over HTTP/3", res[0])
            a = h3_msg(res[1], aql.QueryResponse)
            check(single(a) == b"\x01bytes", f"{n}: the AQL value read over HTTP/3", res[1])
            check(res[2].get("grpc_status") == 0, f"{n}: Set over HTTP/3", res[2])
            r = rpc(d.nana.Get, npb.GetRequest(key=f"from-h3-{n}"))
            check(ok(r) and r[2].value_json == '"over HTTP/3"', f"{n}: read over HTTP/2", r)
            d.close()
    finally:
        finish(s)


# ---- grpc-go -------------------------------------------------------------------------

def go_client(s, script, timeout=120):
    """Runs aql_h2_client with |script| (addr and CA filled in); returns its result lines."""
    script = dict({"addr": f"127.0.0.1:{s.port}", "ca": "ca.pem", "server_name": "localhost",
                   "timeout_s": timeout}, **script)
    p = subprocess.run([GO_CLIENT], input=json.dumps(script), capture_output=True, text=True,
                       cwd=s.dir, timeout=timeout + 30)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    if p.returncode != 0 or len(lines) != len(script["ops"]) + 1:
        check(False, "aql_h2_client ran", f"rc={p.returncode} {p.stdout[-1000:]} "
              f"{p.stderr[-2000:]}")
        return [{} for _ in script["ops"]] + [{}]
    return lines


def test_grpc_go():
    s = H2Server("grpcgo").start()
    try:
        n = 2000 if SANITIZED else 10000
        ops = [
            {"op": "health"},
            {"op": "health", "service": "no.such.Service"},
            {"op": "aql_health"},
            {"op": "query", "kind": "set", "key": "g1", "value": '{"go": 1}'},
            {"op": "query", "kind": "get", "key": "g1"},
            {"op": "query", "kind": "get", "key": "g1", "collection": "bad-name"},
            {"op": "batch", "n": 1000, "prefix": "b"},
            {"op": "stream", "start": "b", "end": "c"},
            {"op": "interactive", "n": n, "prefix": "i", "kind": "set"},
            {"op": "interactive", "n": n, "prefix": "i", "kind": "get"},
            {"op": "interactive", "n": n, "prefix": "d", "kind": "set", "deadline_ms": 20},
            {"op": "raw", "path": "/nanasqlite.v1.NanaSQLite/Nope"},
            {"op": "load", "seconds": 3, "streams": 16, "key": "g1"},
        ]
        for what, extra in (("signature", {"login": "sign", "account": "alice",
                                           "key": "nana_private.pem"}),
                            ("token", {"login": "token", "token": token()}),
                            ("TLS 1.2, signature", {"login": "sign", "account": "alice",
                                                    "key": "nana_private.pem",
                                                    "tls_max": "1.2"})):
            out = go_client(s, dict(extra, ops=ops))
            res, conn = out[:-1], out[-1]
            code = [r.get("code") for r in res]
            check(conn.get("alpn") == "h2", f"grpc-go ({what}): ALPN h2", conn)
            if "1.2" in what:
                check(conn.get("tls") == "1.2", "grpc-go: TLS 1.2", conn)
            check(code[0] == "OK" and res[0].get("status") == "SERVING", f"grpc-go ({what}): "
                  "health Check", res[0])
            check(code[1] == "NotFound", f"grpc-go ({what}): Check of an unknown service", res[1])
            check(code[2] == "OK" and res[2].get("status") == "HEALTH_SERVING",
                  f"grpc-go ({what}): AqlService HealthCheck", res[2])
            check(code[3] == "OK" and res[3].get("affected") == 1 and res[4].get("value") ==
                  '{"go": 1}', f"grpc-go ({what}): ExecuteQuery set and get", res[3:5])
            check(res[5].get("error_code") == "ERROR_VALIDATION_INVALID_COLLECTION",
                  f"grpc-go ({what}): an ErrorResponse", res[5])
            check(code[6] == "OK" and res[6].get("results") == 1000,
                  f"grpc-go ({what}): ExecuteBatch of 1,000 sets", res[6])
            check(code[7] == "OK" and res[7].get("values") == 1000 and res[7].get("sorted") and
                  res[7].get("total") == 1000 and res[7].get("sequences_ok"),
                  f"grpc-go ({what}): ExecuteStream", res[7])
            for i, kind in ((8, "sets"), (9, "gets")):
                check(code[i] == "OK" and res[i].get("answers") == n and
                      res[i].get("in_order") and res[i].get("errors") == 0,
                      f"grpc-go ({what}): ExecuteInteractive, {n} pipelined {kind}", res[i])
            check(code[10] == "DeadlineExceeded",
                  f"grpc-go ({what}): a 20 ms deadline on {n} queries", res[10])
            check(code[11] == "Unimplemented", f"grpc-go ({what}): an unknown method", res[11])
            check(res[12].get("calls", 0) > 0 and res[12].get("errors") == 0,
                  f"grpc-go ({what}): 3 s of 16 calls at once on one connection (grpc-go's "
                  "window-sizing pings meanwhile): no error", res[12])
        log = s.log_text()
        check("GOAWAY" not in log, "the server sent grpc-go no GOAWAY",
              [x for x in log.splitlines() if "GOAWAY" in x][:3])
    finally:
        finish(s)


# ---- the listener --------------------------------------------------------------------

def test_no_grpc_tcp_and_graceful_stop():
    s = H2Server("notcp", ["--no-grpc-tcp"], h2c=False).start()
    try:
        ch = s.channel()
        try:
            grpc.channel_ready_future(ch).result(timeout=2)
            check(False, "--no-grpc-tcp: no TLS listener on TCP")
        except grpc.FutureTimeoutError:
            check(True, "--no-grpc-tcp: no TLS listener on TCP")
        ch.close()
        res = h3(s, [{"path": "/grpc.health.v1.Health/Check", "messages": [""]}])
        check(res[0].get("grpc_status") == 0, "--no-grpc-tcp: HTTP/3 still serves", res[0])
    finally:
        finish(s)
    # A graceful stop: an open Watch sees NOT_SERVING and ends UNAVAILABLE.
    s = H2Server("stop").start()
    d = Door(s, tls=False, login=False)
    w = d.health.Watch(hpb.HealthCheckRequest(), timeout=30)
    seen, end = [], []

    def read():
        try:
            for m in w:
                seen.append(m.status)
        except grpc.RpcError as e:
            end.append(e.code())
    t = threading.Thread(target=read)
    t.start()
    deadline = time.time() + 10
    while not seen and time.time() < deadline:
        time.sleep(0.02)
    s.proc.send_signal(signal.SIGTERM)
    t.join(timeout=30)
    check(seen == [hpb.HealthCheckResponse.SERVING, hpb.HealthCheckResponse.NOT_SERVING] and
          end == [grpc.StatusCode.UNAVAILABLE], "Watch at a graceful stop: NOT_SERVING, "
          "then UNAVAILABLE", (seen, end))
    d.close()
    try:
        s.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    check(s.proc.returncode == 0, "the server stopped cleanly", s.proc.returncode)
    s.stop()


# ---- set-up ---------------------------------------------------------------------------

def build(what, argv):
    b = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if b.returncode != 0:
        print(f"  FAIL: building {what}\n" + b.stdout + b.stderr)
        return False
    return True


def setup():
    """Generates the grpcio stubs and builds grpc_h3_client and aql_h2_client into
    BUILD/interop; imports the stubs."""
    global H3_CLIENT, GO_CLIENT, descriptor_pb2, descriptor_pool, message_factory
    global npb, npb_grpc, aql, aql_grpc, qpb, tpb, epb, amaters, amaters_grpc
    global hpb, hpb_grpc, rpb, rpb_grpc
    if grpc is None:
        print("  FAIL: grpcio not importable: run with /usr/bin/python3 (python3-grpcio)")
        return False
    out = os.path.join(os.path.abspath(ARGS.build_dir), "interop")
    stubs = os.path.join(out, "grpcio-stubs")
    it = os.path.join(ROOT, "tests/interop")
    if not (build("the grpcio stubs", ["sh", os.path.join(it, "build-grpcio-stubs.sh"), stubs])
            and build("grpc_h3_client", ["sh", os.path.join(it, "build-quicgo.sh"), out,
                                         "tests/interop/grpc_h3_client.go"])
            and build("aql_h2_client", ["sh", os.path.join(it, "build-aql-h2-client.sh"),
                                        out])):
        return False
    H3_CLIENT = os.path.join(out, "grpc_h3_client")
    GO_CLIENT = os.path.join(out, "aql_h2_client")
    sys.path.insert(0, stubs)
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa
    from nanasqlite.v1 import nanasqlite_pb2 as npb, nanasqlite_pb2_grpc as npb_grpc  # noqa
    from amaters import aql_pb2 as aql, aql_pb2_grpc as aql_grpc  # noqa
    from amaters import query_pb2 as qpb, types_pb2 as tpb, errors_pb2 as epb  # noqa
    import amaters_service_pb2 as amaters  # noqa
    import amaters_service_pb2_grpc as amaters_grpc  # noqa
    from health.v1 import health_pb2 as hpb, health_pb2_grpc as hpb_grpc  # noqa
    from reflection.v1alpha import reflection_pb2 as rpb, reflection_pb2_grpc as rpb_grpc  # noqa
    serverlib.ARGS = ARGS
    return True


def main():
    def extra(ap):
        ap.add_argument("--build-dir", required=True)

    def do_setup():
        global ARGS
        ARGS = serverlib.ARGS
        return setup()
    return serverlib.run_main(globals(), extra_args=extra, setup=do_setup)


if __name__ == "__main__":
    sys.exit(main())
