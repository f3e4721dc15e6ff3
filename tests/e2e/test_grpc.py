#!/usr/bin/env python3
"""The gRPC door end to end: the real nanasqlite-server on loopback, called
over gRPC over HTTP/3 by grpc_h3_client (tests/interop/grpc_h3_client.go),
a client on quic-go's HTTP/3 stack (Debian's quic-go 0.29, built offline by
the test), so the door is checked against an HTTP/3 and QPACK we did not
write.

The few protobuf messages are written and read here by hand (a varint and
length-delimited codec of twenty lines). Each test checks that the server
is alive afterwards and that its log has no sanitizer report.

Usage: test_grpc.py --bin-dir DIR --build-dir DIR [--tmp DIR] [TEST...]
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None
CLIENT = None  # the grpc_h3_client binary
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEALTH = "/grpc.health.v1.Health/"
REFLECT = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
NANA = "/nanasqlite.v1.NanaSQLite/"
SIGN = {"account": "default", "key": "nana_private.pem"}

# gRPC statuses
OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 3, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 8, 12, 13, 14, 16


# ---- protobuf, by hand ------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb(*fields):
    """A message from (number, value) pairs: int -> varint, str/bytes -> bytes."""
    out = b""
    for num, v in fields:
        if isinstance(v, bool) or isinstance(v, int):
            out += varint(num << 3) + varint(int(v))
        else:
            v = v.encode() if isinstance(v, str) else v
            out += varint(num << 3 | 2) + varint(len(v)) + v
    return out


def unpb(data):
    """A message into {number: [values]} (varints as int, the rest as bytes)."""
    if isinstance(data, str):
        data = bytes.fromhex(data)
    out, i = {}, 0

    def rd():
        nonlocal i
        n, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = rd()
        num, wt = key >> 3, key & 7
        if wt == 0:
            v = rd()
        elif wt == 2:
            n = rd()
            v = data[i:i + n]
            i += n
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(num, []).append(v)
    return out


def first(msg, num, default=None):
    return msg.get(num, [default])[0]


# ---- the client -------------------------------------------------------------------

def call(path, *msgs, **kw):
    """One call of a script: |msgs| are message bytes."""
    c = {"path": path, "messages": [m.hex() for m in msgs]}
    c.update(kw)
    return c


def run(s, calls, concurrent=False, cert=None, key=None, timeout=60, addr=None):
    """Runs |calls| on one connection to |s|; returns (results, connection line)."""
    script = {"addr": addr or f"127.0.0.1:{s.port}", "ca": "ca.pem", "calls": calls,
              "concurrent": concurrent, "timeout_s": timeout}
    if cert:
        script["cert"], script["key"] = cert, key
    p = subprocess.run([CLIENT], input=json.dumps(script), capture_output=True, text=True,
                       cwd=s.dir, timeout=timeout + 15)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    if p.returncode != 0 or not lines:
        check(False, "grpc_h3_client ran", f"rc={p.returncode} {p.stderr[-2000:]}")
        return [{} for _ in calls], {"conn": False, "error": p.stderr}
    return lines[:-1], lines[-1]


def good(s, results, what):
    """The last call of a script is a health Check: it must be SERVING."""
    r = results[-1]
    check(r.get("grpc_status") == OK and r.get("messages") == [pb((1, 1)).hex()],
          f"{what}: a good call after it on the same connection works", r)


CHECK = call(HEALTH + "Check", b"")
BIG_JSON = json.dumps(["v" * 1000 + str(i) for i in range(300)])


def start(name, flags=(), **kw):
    return Server("grpc-" + name, list(flags), **kw).start()


def finish(s):
    check(s.alive(), "server alive")
    s.stop()


def cli(s, *args):
    """nanasqlite-cli against |s| from its directory (the NanaSQLite door)."""
    argv = [os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--port", str(s.port), "--ca", "ca.pem",
            "--timeout-ms", "5000", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANASQLITE_")}
    p = subprocess.run(argv, cwd=s.dir, env=env, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


# ---- health and reflection --------------------------------------------------------

def test_health():
    s = start("health")
    res, conn = run(s, [
        call(HEALTH + "Check", b""),
        call(HEALTH + "Check", pb((1, "nanasqlite.v1.NanaSQLite"))),
        call(HEALTH + "Check", pb((1, "no.such.Service"))),
        call(HEALTH + "Watch", b"", cancel_after_messages=1),
        CHECK,
    ])
    r = res[0]
    check(r.get("status") == 200 and r.get("headers", {}).get("content-type") == "application/grpc",
          "Check: 200, application/grpc", r)
    check(r.get("messages") == [pb((1, 1)).hex()] and r.get("grpc_status") == OK,
          "Check '': SERVING, status 0 in the trailers", r)
    check("grpc-status" in r.get("trailers", {}), "Check: the status came in trailers", r)
    check(res[1].get("messages") == [pb((1, 1)).hex()], "Check of the NanaSQLite service", res[1])
    check(res[2].get("grpc_status") == NOT_FOUND and not res[2].get("messages"),
          "Check of an unknown service: NOT_FOUND", res[2])
    w = res[3]
    check(w.get("messages") == [pb((1, 1)).hex()] and w.get("grpc_status") == -1,
          "Watch: SERVING first, the stream stays open", w)
    good(s, res, "a cancelled Watch")
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


def test_reflection():
    s = start("reflect")
    res, _ = run(s, [
        call(REFLECT, pb((7, "*")), pb((4, "nanasqlite.v1.NanaSQLite")), pb((4, "no.Such")),
             pb((3, "grpc/health/v1/health.proto"))),
        CHECK,
    ])
    r = res[0]
    msgs = [unpb(m) for m in r.get("messages", [])]
    check(r.get("grpc_status") == OK and len(msgs) == 4, "reflection: four answers, status 0", r)
    if len(msgs) == 4:
        ls = unpb(first(msgs[0], 6, b""))
        names = sorted(unpb(x).get(1, [b""])[0].decode() for x in ls.get(1, []))
        check(names == ["AmateRS", "amaters.aql.AqlService", "grpc.health.v1.Health",
                        "grpc.reflection.v1alpha.ServerReflection", "nanasqlite.v1.NanaSQLite"],
              "list_services", names)
        check(unpb(first(msgs[0], 2, b"")).get(7) == [b"*"], "the original request echoed")
        fd = unpb(first(msgs[1], 4, b"")).get(1, [])
        check(any(b"nanasqlite/v1/nanasqlite.proto" in f and b"BatchGetRequest" in f for f in fd),
              "file_containing_symbol: the file of nanasqlite.v1", len(fd))
        err = unpb(first(msgs[2], 7, b""))
        check(first(err, 1) == NOT_FOUND, "an unknown symbol: error_response NOT_FOUND", err)
        fd = unpb(first(msgs[3], 4, b"")).get(1, [])
        check(any(b"grpc.health.v1" in f for f in fd), "file_by_filename", len(fd))
    good(s, res, "reflection")
    # Many requests on one stream: every answer goes out, in order.
    req = [pb((4, "nanasqlite.v1.NanaSQLite")), pb((7, "*"))] * 150
    res, _ = run(s, [call(REFLECT, *req), CHECK])
    msgs = [unpb(m) for m in res[0].get("messages", [])]
    check(res[0].get("grpc_status") == OK and len(msgs) == 300 and
          all((4 if i % 2 == 0 else 6) in m for i, m in enumerate(msgs)),
          "300 reflection requests on one stream: 300 answers in order",
          (res[0].get("grpc_status"), len(msgs)))
    good(s, res, "a long reflection stream")
    # Refused while its request is still open: the server stops reading it
    # (STOP_SENDING), the client resets its side in reply, and the answer
    # already under way must still arrive whole.
    req = [pb((4, "nanasqlite.v1.NanaSQLite"))] * 2000 + [b"\xff\xff"]
    res, _ = run(s, [call(REFLECT, *req, keep_open=True, max_kept=1), CHECK])
    r = res[0]
    check(r.get("nmessages") == 2000 and r.get("grpc_status") == INTERNAL and
          r.get("reset") == -1,
          "an early refusal: the 2000 answers before it and its status arrive, no reset",
          (r.get("nmessages"), r.get("grpc_status"), r.get("error")))
    good(s, res, "an early refusal of a long stream")
    finish(s)


def test_reflection_answers_held():
    """A reflection stream's answers stay with the call until it ends: they
    count in the connection's budget of bytes held (50 MiB), so a client
    asking without end cannot make the server hold more. (The connection
    never logs in: a slow build gets more than the default 5 s.)"""
    limit = 8 * (1 << 20)
    s = start("reflect-budget", ["--max-conn-bytes", str(limit), "--auth-timeout-ms", "120000"])
    req = pb((4, "nanasqlite.v1.NanaSQLite"))
    n = 12000
    res, conn = run(s, [call(REFLECT, *[req] * n, max_kept=1), CHECK], timeout=180)
    r = res[0]
    each = len(r["messages"][0]) // 2 + 5 if r.get("messages") else 1
    # The requests count too: at most all n of them, 5 + len(req) bytes each.
    low = (limit - n * (5 + len(req))) // each
    check(r.get("grpc_status") == RESOURCE_EXHAUSTED and
          low <= r.get("nmessages", 0) <= limit // each,
          "a reflection stream stops with RESOURCE_EXHAUSTED at the --max-conn-bytes budget",
          (r.get("grpc_status"), r.get("grpc_message"), r.get("nmessages"), each, r.get("error")))
    good(s, res, "the budget of a reflection stream")
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


# ---- NanaSQLite -------------------------------------------------------------------

def test_nanasqlite_methods():
    s = start("methods")
    res, conn = run(s, [
        call(NANA + "Set", pb((1, "a"), (2, '{"x": [1, 2]}')), sign=SIGN),
        call(NANA + "Get", pb((1, "a"))),
        call(NANA + "Get", pb((1, "a"))),  # a cached read now
        call(NANA + "Get", pb((1, "missing"))),
        call(NANA + "BatchSet", pb((1, pb((1, "b"), (2, "2"))), (1, pb((1, "c"), (2, '"three"'))))),
        call(NANA + "BatchGet", pb((1, "b"), (1, "nope"), (1, "c"))),
        call(NANA + "Delete", pb((1, "b"))),
        call(NANA + "Delete", pb((1, "b"))),
        call(NANA + "Call", pb((1, "__len__"))),
        call(NANA + "Call", pb((1, "get"), (2, '["zz", 7]'))),
        call(NANA + "Call", pb((1, "__getitem__"), (2, '["zz"]'))),
        call(NANA + "Call", pb((1, "no_such_method"))),
        call(NANA + "Set", pb((1, "t"), (2, "5"), (15, "other"))),
        call(NANA + "Get", pb((1, "t"), (15, "other"))),
        call(NANA + "Get", pb((1, "t"))),
        call(NANA + "Set", pb((1, "bad"), (2, "{not json"))),
        call(NANA + "Set", pb((1, "big"), (2, BIG_JSON))),
        call(NANA + "Get", pb((1, "big"))),
        CHECK,
    ])
    check(res[0].get("grpc_status") == OK and res[0].get("messages") == [""], "Set: empty reply",
          res[0])
    for i in (1, 2):
        g = unpb(res[i].get("messages", [""])[0]) if res[i].get("messages") else {}
        check(res[i].get("grpc_status") == OK and first(g, 1) == 1 and
              json.loads(first(g, 2, b"null")) == {"x": [1, 2]}, f"Get #{i}: found, the value",
              res[i])
    check(res[3].get("grpc_status") == OK and res[3].get("messages") == [""],
          "Get of an absent key: found false, status OK", res[3])
    check(res[4].get("grpc_status") == OK, "BatchSet", res[4])
    items = [unpb(x) for x in unpb(res[5].get("messages", [""])[0]).get(1, [])] \
        if res[5].get("messages") else []
    got = [(first(i, 1, b"").decode(), first(i, 2, 0), first(i, 3, b"").decode()) for i in items]
    check(got == [("b", 1, "2"), ("nope", 0, ""), ("c", 1, '"three"')],
          "BatchGet: the request's order, found flags, values", got)
    check(unpb(res[6]["messages"][0]) == {1: [1]} if res[6].get("messages") else False,
          "Delete: existed", res[6])
    check(res[7].get("grpc_status") == OK and res[7].get("messages") == [""],
          "Delete again: existed false", res[7])
    r = unpb(res[8]["messages"][0]) if res[8].get("messages") else {}
    check(first(r, 1) == b"2", "Call __len__: 2 (a, c)", res[8])
    r = unpb(res[9]["messages"][0]) if res[9].get("messages") else {}
    check(first(r, 1) == b"7", "Call get with a default", res[9])
    r = unpb(res[10]["messages"][0]) if res[10].get("messages") else {}
    e = unpb(first(r, 2, b""))
    check(res[10].get("grpc_status") == OK and first(e, 1) == b"KeyError",
          "Call __getitem__ of an absent key: CallError KeyError, status OK", res[10])
    check(res[11].get("grpc_status") not in (OK, -1, None) or
          first(unpb(first(unpb(res[11]["messages"][0]), 2, b"")), 1) not in (None, b""),
          "Call of an unknown method: an error", res[11])
    check(res[12].get("grpc_status") == OK, "Set in another table", res[12])
    g = unpb(res[13]["messages"][0]) if res[13].get("messages") else {}
    check(first(g, 2) == b"5", "Get from the other table", res[13])
    check(res[14].get("messages") == [""], "the default table does not have it", res[14])
    check(res[15].get("grpc_status") not in (OK, -1), "Set of bad JSON: an error status",
          res[15])
    check(res[16].get("grpc_status") == OK, "Set of a 300 KB value (many DATA frames)", res[16])
    g = unpb(res[17]["messages"][0]) if res[17].get("messages") else {}
    check(first(g, 2) == BIG_JSON.encode(), "Get of the 300 KB value", len(first(g, 2, b"")))
    good(s, res, "the NanaSQLite calls")
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


def test_both_doors_share_the_data():
    s = start("doors")
    res, _ = run(s, [call(NANA + "Set", pb((1, "from_grpc"), (2, "41")), sign=SIGN)])
    check(res[0].get("grpc_status") == OK, "Set through gRPC", res[0])
    r = cli(s, "get", "from_grpc")
    check(r[0] == 0 and r[1] == "41", "read through the NanaSQLite door (nanasqlite-cli)", r)
    r = cli(s, "set", "from_nana", '{"k": "v"}')
    check(r[0] == 0, "set through the NanaSQLite door", r)
    res, _ = run(s, [call(NANA + "Get", pb((1, "from_nana")), sign=SIGN),
                     call(NANA + "Get", pb((1, "from_grpc")))])
    g = unpb(res[0]["messages"][0]) if res[0].get("messages") else {}
    check(json.loads(first(g, 2, b"null")) == {"k": "v"}, "read through gRPC", res[0])
    # A cached value, read through the other door's reply form.
    r = cli(s, "get", "from_nana")
    check(r[0] == 0 and json.loads(r[1]) == {"k": "v"}, "and again through the NanaSQLite door", r)
    g = unpb(res[1]["messages"][0]) if res[1].get("messages") else {}
    check(first(g, 2) == b"41", "the gRPC value read back through gRPC", res[1])
    finish(s)


# ---- login -------------------------------------------------------------------------

def test_auth():
    s = start("auth", ["--ban-failures", "3", "--ban-seconds", "60"])
    now = int(time.time())
    res, _ = run(s, [
        call(NANA + "Get", pb((1, "k"))),
        call(NANA + "Get", pb((1, "k")), metadata=[["nana-account", "default"]]),
        call(NANA + "Get", pb((1, "k")), sign=dict(SIGN, timestamp=now - 3600)),
        CHECK,
    ])
    check(res[0].get("grpc_status") == UNAUTHENTICATED, "no login: UNAUTHENTICATED", res[0])
    check(res[1].get("grpc_status") == UNAUTHENTICATED, "an account without signature", res[1])
    check(res[2].get("grpc_status") == UNAUTHENTICATED, "a stale timestamp", res[2])
    good(s, res, "refused logins")
    # A good login; its metadata replayed on another connection is refused.
    res, _ = run(s, [call(NANA + "Get", pb((1, "k")), sign=SIGN),
                     call(NANA + "Get", pb((1, "k"))),
                     call(NANA + "Get", pb((1, "k")), sign=dict(SIGN, timestamp=now - 5)),
                     call(NANA + "Get", pb((1, "k")), sign=dict(SIGN, timestamp=now - 5,
                                                                corrupt=True))])
    check(res[0].get("grpc_status") == OK, "a signed call logs in", res[0])
    check(res[1].get("grpc_status") == OK, "later calls on the connection need no metadata", res[1])
    check(res[2].get("grpc_status") == OK,
          "a fresh signature of the same account (another timestamp) is verified and taken",
          res[2])
    check(res[3].get("grpc_status") == UNAUTHENTICATED,
          "a bad fresh signature on a logged-in connection: refused", res[3])
    stolen = [[k, v] for k, v in res[0].get("login", {}).items()]
    res, _ = run(s, [call(NANA + "Get", pb((1, "k")), metadata=stolen), CHECK])
    check(res[0].get("grpc_status") == UNAUTHENTICATED,
          "the same signature on another connection: refused", res[0])
    good(s, res, "a replayed login")
    # The good login cleared the two failures before it: the replay is the
    # only one since, so the address is not banned.
    res, conn = run(s, [CHECK])
    check(res[0].get("grpc_status") == OK, "a good login clears the failures before it",
          (res, conn))
    check("banned" not in s.log_text(), "no ban logged")
    finish(s)


def test_bad_signature_bans():
    s = start("ban", ["--ban-failures", "2", "--ban-seconds", "60"])
    res, _ = run(s, [
        call(NANA + "Get", pb((1, "k")), sign=dict(SIGN, corrupt=True)),
        CHECK,
        call(NANA + "Get", pb((1, "k")), sign=dict(SIGN, corrupt=True)),
        call(NANA + "Get", pb((1, "k")), sign=SIGN),
    ])
    check(res[0].get("grpc_status") == UNAUTHENTICATED and
          res[0].get("grpc_message") == "authentication failed", "a bad signature", res[0])
    good(s, res[:2], "a bad signature")
    check(res[2].get("grpc_status") == UNAUTHENTICATED and "banned" in res[2].get("grpc_message"),
          "the second one bans the address", res[2])
    check(res[3].get("grpc_status") == UNAUTHENTICATED, "a good signature while banned", res[3])
    res, conn = run(s, [CHECK])
    check(not conn.get("conn"), "a new connection from a banned address is refused", conn)
    finish(s)


def test_certificate_login():
    s = Server("grpc-cert", ["--client-ca", "ca.pem", "--accounts", "accounts.json"])
    rc = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cert-gen"), "--client", "alice"],
                        cwd=s.dir, capture_output=True, text=True, timeout=60)
    check(rc.returncode == 0, "cert-gen --client", rc.stderr)
    out = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cert-gen"), "--fingerprint",
                          "alice.pem"], cwd=s.dir, capture_output=True, text=True, timeout=60)
    fps = json.loads("{" + out.stdout.replace("\n", "") + "}")
    with open(os.path.join(s.dir, "accounts.json"), "w") as f:
        json.dump({"accounts": [{"name": "alice", "login": "certificate", **fps}]}, f)
    s.start()
    res, _ = run(s, [call(NANA + "Set", pb((1, "c"), (2, "1"))),
                     call(NANA + "Get", pb((1, "c")))], cert="alice.pem", key="alice-key.pem")
    check(res[0].get("grpc_status") == OK, "certificate login: Set with no metadata", res[0])
    check(unpb(res[1].get("messages", [""])[0]).get(2) == [b"1"] if res[1].get("messages")
          else False, "and Get", res[1])
    res, _ = run(s, [call(NANA + "Get", pb((1, "c")))])
    check(res[0].get("grpc_status") == UNAUTHENTICATED, "without the certificate: refused", res[0])
    finish(s)


# ---- bearer tokens -------------------------------------------------------------------

SECRET_A = b"alice-secret-0123456789abcdef-0123456789"
SECRET_C = b"carol-secret-0123456789abcdef-0123456789"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret, header=None):
    """An HS256 token of |claims| (a dict), written here independently of the server."""
    h = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    c = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{h}.{c}".encode(), hashlib.sha256).digest()
    return f"{h}.{c}.{b64url(mac)}"


def bearer(tok):
    return [["authorization", "Bearer " + tok]]


def token_server(name, mode=0o600, flags=()):
    s = Server("grpc-" + name, ["--ban-failures", "50", "--ban-seconds", "60", *flags],
               accounts=[{"name": "alice", "key": "nana", "jwt_secret_file": "alice.jwt"},
                         {"name": "bob", "key": "bob"},
                         {"name": "carol", "key": "carol", "jwt_secret_file": "secrets/carol.jwt"}],
               keys=("nana", "bob", "carol"))
    os.makedirs(os.path.join(s.dir, "secrets"))
    for path, secret in (("alice.jwt", SECRET_A + b"\n"), ("secrets/carol.jwt", SECRET_C)):
        full = os.path.join(s.dir, path)
        with open(full, "wb") as f:
            f.write(secret)
        os.chmod(full, mode)
    return s


def test_bearer_tokens():
    s = token_server("jwt").start()
    now = int(time.time())
    good_tok = jwt({"sub": "alice", "exp": now + 600, "iat": now}, SECRET_A)
    res, _ = run(s, [
        call(NANA + "Set", pb((1, "t"), (2, "1")), metadata=bearer(good_tok)),
        call(NANA + "Get", pb((1, "t"))),
        call(NANA + "Get", pb((1, "t")), metadata=bearer(good_tok)),
        call(NANA + "Get", pb((1, "t")),
             metadata=bearer(jwt({"sub": "carol", "exp": now + 600}, SECRET_C))),
        CHECK,
    ])
    check(res[0].get("grpc_status") == OK, "a good token logs in: Set", res[0])
    check(res[1].get("grpc_status") == OK, "a later call without a token", res[1])
    check(res[2].get("grpc_status") == OK, "a later call with the token again", res[2])
    check(res[3].get("grpc_status") == UNAUTHENTICATED and
          "another account" in res[3].get("grpc_message", ""),
          "a token for another account on a logged-in connection", res[3])
    good(s, res, "tokens")
    bad = [
        ("expired (exp == now counts)", jwt({"sub": "alice", "exp": now - 1}, SECRET_A),
         "the token expired"),
        ("the wrong secret", jwt({"sub": "alice", "exp": now + 600}, SECRET_C),
         "authentication failed"),
        ("alg none", b64url(b'{"alg":"none"}') + "." +
         b64url(json.dumps({"sub": "alice", "exp": now + 600}).encode()) + ".",
         "HS256"),
        ("alg HS512", jwt({"sub": "alice", "exp": now + 600}, SECRET_A, {"alg": "HS512"}),
         "HS256"),
        ("an account without a secret", jwt({"sub": "bob", "exp": now + 600}, SECRET_A),
         "authentication failed"),
        ("an unknown account", jwt({"sub": "zed", "exp": now + 600}, SECRET_A),
         "authentication failed"),
        ("padding", good_tok + "=", "base64url"),
    ]
    res, conn = run(s, [call(NANA + "Get", pb((1, "t")), metadata=bearer(t)) for _, t, _ in bad]
                    + [call(NANA + "Get", pb((1, "t"))), CHECK])
    for (what, tok, msg), r in zip(bad, res):
        check(r.get("grpc_status") == UNAUTHENTICATED and msg in r.get("grpc_message", ""),
              f"{what}: UNAUTHENTICATED ({msg})", r)
        check(tok not in r.get("grpc_message", ""), f"{what}: the token is not echoed", r)
    check(res[len(bad)].get("grpc_status") == UNAUTHENTICATED,
          "no login after refused tokens", res[len(bad)])
    good(s, res, "refused tokens")
    # A login lasts until the token's exp; a fresh token moves the end.
    short = jwt({"sub": "carol", "exp": now + 3}, SECRET_C)
    fresh = jwt({"sub": "carol", "exp": now + 600}, SECRET_C)
    res, _ = run(s, [
        call(NANA + "Get", pb((1, "t")), metadata=bearer(short)),
        call(NANA + "Get", pb((1, "t")), delay_ms=int(max(0, (now + 4 - time.time()) * 1000))),
        call(NANA + "Get", pb((1, "t")), metadata=bearer(fresh)),
        call(NANA + "Get", pb((1, "t"))),
    ])
    check(res[0].get("grpc_status") == OK, "a short token logs in (carol, relative secret path)",
          res[0])
    check(res[1].get("grpc_status") == UNAUTHENTICATED and
          res[1].get("grpc_message") == "the token expired", "after its exp: expired", res[1])
    check(res[2].get("grpc_status") == OK and res[3].get("grpc_status") == OK,
          "a fresh token goes on", res[2:])
    log = s.log_text()
    check(good_tok not in log and SECRET_A.decode() not in log,
          "neither a token nor a secret is logged")
    check("auth ok: account 'alice'" in log and "by bearer token" in log, "the login is logged")
    finish(s)


def test_token_secret_file_mode():
    s = token_server("jwt-mode", mode=0o644)
    s.start(expect_ok=False)
    rc = s.proc.wait(timeout=30)
    log = s.log_text()
    check(rc == 1, "an accounts file naming a 0644 secret file: the start fails", rc)
    check("jwt_secret_file" in log and "chmod 600" in log and SECRET_A.decode() not in log,
          "with a clear message that shows no secret", log[-500:])
    s.stop()


# ---- server proofs ------------------------------------------------------------------

def test_proof_key_and_verify_proof():
    s = start("proof")
    key, pub = os.path.join(s.dir, "proof.key"), os.path.join(s.dir, "proof.pub")
    check(os.path.exists(key) and os.stat(key).st_mode & 0o777 == 0o600,
          "the first start made proof.key, 0600")
    kid = hashlib.sha256(base64.b64decode(open(pub).read().split()[1])[-32:]).hexdigest()[:16]
    check(f"key id {kid}" in s.log_text(), "the proof key's id is logged", kid)
    for name, data in (("q.bin", b"SELECT * FROM kv"), ("r.bin", b'[["a", 1]]')):
        with open(os.path.join(s.dir, name), "wb") as f:
            f.write(data)
    mk = subprocess.run([os.path.join(os.path.abspath(ARGS.build_dir), "tests", "proof_make"),
                         key, "42", "1700000000123", "q.bin", "r.bin", "p.bin"], cwd=s.dir,
                        capture_output=True, text=True, timeout=60)
    check(mk.returncode == 0, "proof_make", mk.stderr)
    cli_bin = os.path.join(ARGS.bin_dir, "nanasqlite-cli")

    def verify(*extra):
        p = subprocess.run([cli_bin, "verify-proof", "--public-key", "proof.pub", "--query",
                            "q.bin", "--result", "r.bin", *extra], cwd=s.dir,
                           capture_output=True, text=True, timeout=60)
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            return p.returncode, {"stdout": p.stdout, "stderr": p.stderr}

    rc, out = verify("--proof", "p.bin")
    check(rc == 0 and out == {"valid": True, "seq": 42, "time_ms": 1700000000123, "key_id": kid},
          "verify-proof: valid", (rc, out))
    proof = open(os.path.join(s.dir, "p.bin"), "rb").read()
    rc, out = verify("--proof-hex", proof.hex())
    check(rc == 0 and out.get("valid") is True, "verify-proof --proof-hex", (rc, out))
    for at in (0, 4, 5, 13, 21, 29, 61, 93, 156):
        bad = bytearray(proof)
        bad[at] ^= 0x01
        rc, out = verify("--proof-hex", bytes(bad).hex())
        check(rc == 1 and out.get("valid") is False and out.get("reason"),
              f"a flipped bit at byte {at}: invalid", (rc, out))
    with open(os.path.join(s.dir, "r2.bin"), "wb") as f:
        f.write(b'[["a", 2]]')
    p = subprocess.run([cli_bin, "verify-proof", "--public-key", "proof.pub", "--query", "q.bin",
                        "--result", "r2.bin", "--proof", "p.bin"], cwd=s.dir,
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and "another result" in p.stdout, "another result: invalid",
          p.stdout)
    p = subprocess.run([cli_bin, "verify-proof", "--query", "q.bin"], cwd=s.dir,
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "usage" in p.stderr, "a wrong command line: status 2", p.stderr)
    finish(s)
    # --proof-key names a file that must exist; --proof-mode never needs none.
    s2 = Server("grpc-proof2", ["--proof-key", "nope.key"])
    s2.start(expect_ok=False)
    check(s2.proc.wait(timeout=30) == 1 and "proof key nope.key" in s2.log_text(),
          "a missing --proof-key: the start fails, naming it", s2.log_text()[-300:])
    s2.stop()
    s3 = Server("grpc-proof3", ["--proof-mode", "never"]).start()
    check(not os.path.exists(os.path.join(s3.dir, "proof.key")), "--proof-mode never: no key made")
    finish(s3)


# ---- AQL: signed requests, proofs, roles ---------------------------------------------

AQL = "/amaters.aql.AqlService/"
AMATERS = "/AmateRS/"


def aql_get(key, coll="c"):
    """An amaters.aql.QueryRequest {query {get {collection, key {data}}}}."""
    return pb((1, pb((1, pb((1, coll), (2, pb((1, key))))))))


def aql_set(key, value, coll="c"):
    """... {query {set {collection, key {data}, value {data}}}}."""
    return pb((1, pb((2, pb((1, coll), (2, pb((1, key))), (3, pb((1, value))))))))


def aql_result(resp):
    """An amaters.aql.QueryResponse: ("result"|"error", the inner message)."""
    m = unpb(resp)
    if 1 in m:
        return "result", unpb(m[1][0])
    return "error", unpb(m.get(2, [b""])[0])


def reqsig(seq, **kw):
    d = {"account": "default", "key": "nana_private.pem", "seq": seq}
    d.update(kw)
    return d


def test_aql_signed_requests():
    s = start("aqlsig", ["--ban-failures", "50"])
    q_set, q_get = aql_set("k", '{"n": 1}').hex(), aql_get("k").hex()
    res, _ = run(s, [
        # no login, no signature: refused
        call(AMATERS + "Execute", pb((1, bytes.fromhex(q_get)))),
        # a good signature logs the call (and the connection) in
        call(AMATERS + "Execute", amaters_sign=reqsig(1), amaters_queries=[q_set]),
        # the same seq again: a replay
        call(AMATERS + "Execute", amaters_sign=reqsig(1), amaters_queries=[q_get]),
        # a higher seq: good
        call(AMATERS + "Execute", amaters_sign=reqsig(5), amaters_queries=[q_get]),
        # a wrong signature, a stale time
        call(AMATERS + "Execute", amaters_sign=reqsig(6, corrupt=True), amaters_queries=[q_get]),
        call(AMATERS + "Execute", amaters_sign=reqsig(7, unix_ms=int(time.time() - 3600) * 1000),
             amaters_queries=[q_get]),
        # a stream of signed queries, seq 10, 11, 12
        call(AMATERS + "ExecuteStream", amaters_sign=reqsig(10),
             amaters_queries=[q_get, q_set, q_get]),
        CHECK,
    ])
    check(res[0].get("grpc_status") == UNAUTHENTICATED, "no login, no signature", res[0])
    check(res[1].get("grpc_status") == OK and len(res[1].get("messages", [])) == 1,
          "a signed set", res[1])
    if res[1].get("messages"):
        kind, r = aql_result(unpb(res[1]["messages"][0])[1][0])
        check(kind == "result" and 3 in r, "the signed set: SuccessResult", r)
    check(res[2].get("grpc_status") == UNAUTHENTICATED, "a replayed seq: UNAUTHENTICATED", res[2])
    check(res[3].get("grpc_status") == OK, "a later seq: OK", res[3])
    if res[3].get("messages"):
        kind, r = aql_result(unpb(res[3]["messages"][0])[1][0])
        single = unpb(r.get(1, [b""])[0]) if kind == "result" else {}
        blob = unpb(single.get(1, [b""])[0])
        check(blob.get(1) == [b'{"n": 1}'], "the signed get reads the signed set's value", r)
    check(res[4].get("grpc_status") == UNAUTHENTICATED, "a wrong signature", res[4])
    check(res[5].get("grpc_status") == UNAUTHENTICATED, "a stale time", res[5])
    check(res[6].get("grpc_status") == OK and len(res[6].get("messages", [])) == 3,
          "a signed stream: three answers", res[6])
    good(s, res, "signed requests")
    finish(s)


def test_aql_stream_left_open():
    """A client that leaves an ExecuteInteractive stream open with queries
    the server has not yet taken (more than --aql-max-inflight) and
    vanishes: the server's idle timeout closes the connection, which frees
    the call and what it held (the sanitizer build checks), and the server
    serves the next client."""
    s = start("aqlopen", ["--aql-max-inflight", "2", "--idle-timeout-ms", "1500",
                          "--test-worker-delay-ms", "1000"])
    qs = [aql_get(f"k{i}") for i in range(400)]
    script = {"addr": f"127.0.0.1:{s.port}", "ca": "ca.pem", "timeout_s": 60,
              "calls": [call(AQL + "ExecuteInteractive", *qs, sign=SIGN, keep_open=True)]}
    try:  # the client waits for an answer that never ends: it is killed
        subprocess.run([CLIENT], input=json.dumps(script), capture_output=True, text=True,
                       cwd=s.dir, timeout=3)
        check(False, "the client was still waiting on its open stream")
    except subprocess.TimeoutExpired:
        pass
    time.sleep(3)  # past the idle timeout: the server closed the connection
    check(s.alive(), "the server is alive after the connection closed under the stream")
    res, _ = run(s, [call(AQL + "ExecuteQuery", aql_get("k1"), sign=SIGN), CHECK])
    check(res[0].get("grpc_status") == OK, "a new client is served", res[0])
    good(s, res, "after a stream left open")
    finish(s)


def test_aql_proofs():
    s = start("aqlproof")
    query = aql_set("p", "[1, 2, 3]")
    res, _ = run(s, [
        call(AMATERS + "Execute", pb((1, query)), sign=SIGN, metadata=[["nana-proof", "1"]]),
        call(AQL + "ExecuteQuery", aql_get("p"), sign=SIGN, metadata=[["nana-proof", "1"]]),
        call(AQL + "ExecuteQuery", aql_get("p"), sign=SIGN),
        CHECK,
    ])
    cli_bin = os.path.join(ARGS.bin_dir, "nanasqlite-cli")

    def verify(q, r, proof):
        for name, data in (("q.bin", q), ("r.bin", r)):
            with open(os.path.join(s.dir, name), "wb") as f:
                f.write(data)
        p = subprocess.run([cli_bin, "verify-proof", "--public-key", "proof.pub", "--query",
                            "q.bin", "--result", "r.bin", "--proof-hex", proof.hex()],
                           cwd=s.dir, capture_output=True, text=True, timeout=60)
        try:
            return json.loads(p.stdout).get("valid")
        except ValueError:
            return None

    msgs = res[0].get("messages", [])
    check(res[0].get("grpc_status") == OK and len(msgs) == 1, "AmateRS/Execute with a proof", res[0])
    if msgs:
        m = unpb(msgs[0])
        result, proof = m.get(1, [b""])[0], m.get(2, [b""])[0]
        check(len(proof) == 157, "server_proof: 157 bytes", len(proof))
        check(verify(query, result, proof) is True, "the proof verifies offline")
        check(verify(query, result[:-1] + bytes([result[-1] ^ 1]), proof) is False,
              "a changed byte of the result: invalid")
        check(verify(query[:-1] + bytes([query[-1] ^ 1]), result, proof) is False,
              "a changed byte of the query: invalid")
    t = res[1].get("trailers", {}).get("nana-proof-bin", "")
    check(res[1].get("grpc_status") == OK and t, "ExecuteQuery: the proof in a trailer", res[1])
    if t and res[1].get("messages"):
        proof = base64.b64decode(t + "=" * (-len(t) % 4))
        body = bytes.fromhex(res[1]["messages"][0])
        check(verify(aql_get("p"), body, proof) is True, "the trailer's proof verifies")
        check(verify(aql_get("q"), body, proof) is False, "... not for another query")
    check("nana-proof-bin" not in res[2].get("trailers", {}), "no proof unless asked", res[2])
    finish(s)


def test_aql_roles_and_depth():
    s = token_server("aqlroles").start()
    now = int(time.time())
    reader = jwt({"sub": "alice", "exp": now + 600, "roles": ["read"]}, SECRET_A)
    writer = jwt({"sub": "alice", "exp": now + 600, "roles": ["write"]}, SECRET_A)
    # a predicate 60 NOT levels deep (more than the 100 message levels a request may nest)
    pred = pb((1, pb((1, pb((1, "n"))), (2, pb((1, "1"))))))  # eq {column {name n}, value {1}}
    for _ in range(60):
        pred = pb((8, pb((1, pred))))
    deep = pb((1, pb((4, pb((1, "c"), (2, pred))))))
    ok_pred = pb((1, pb((1, pb((1, "n"))), (2, pb((1, "1"))))))
    for _ in range(20):
        ok_pred = pb((8, pb((1, ok_pred))))
    fine = pb((1, pb((4, pb((1, "c"), (2, ok_pred))))))
    res, _ = run(s, [
        call(AQL + "ExecuteQuery", fine, metadata=bearer(reader)),
        call(AQL + "ExecuteQuery", aql_set("r", "1"), metadata=bearer(reader)),
        call(AQL + "ExecuteQuery", aql_get("r"), metadata=bearer(reader)),
        call(AQL + "ExecuteQuery", deep, metadata=bearer(reader)),
        CHECK,
    ])
    check(res[0].get("grpc_status") == OK and aql_result(bytes.fromhex(
        (res[0].get("messages") or [""])[0]))[0] == "result",
          "a predicate 20 NOT levels deep runs", res[0])
    res = res[1:]
    kind, err = aql_result(bytes.fromhex(res[0].get("messages", [""])[0]) if res[0].get("messages") else b"")
    check(res[0].get("grpc_status") == OK and kind == "error" and err.get(1) == [3002],
          "a read-only token's set: ERROR_AUTH_INSUFFICIENT_PERMISSIONS", (res[0], err))
    kind, _ = aql_result(bytes.fromhex(res[1].get("messages", [""])[0]) if res[1].get("messages") else b"")
    check(res[1].get("grpc_status") == OK and kind == "result", "its get runs", res[1])
    check(res[2].get("grpc_status") == INTERNAL and "deeper" in res[2].get("grpc_message", ""),
          "a request nested too deep: INTERNAL, before protobuf-c unpacks it", res[2])
    good(s, res, "roles")
    res, _ = run(s, [call(AQL + "ExecuteQuery", aql_set("r", "1"), metadata=bearer(writer)), CHECK])
    kind, _ = aql_result(bytes.fromhex(res[0].get("messages", [""])[0]) if res[0].get("messages") else b"")
    check(kind == "result", "a write token's set runs", res[0])
    finish(s)


# ---- bad requests -------------------------------------------------------------------

def test_bad_requests():
    s = start("bad", ["--grpc-max-message-bytes", "1000", "--grpc-max-header-bytes", "2048",
                      "--grpc-max-header-fields", "16", "--no-bans"])
    big = pb((1, "k"), (2, '"' + "x" * 1200 + '"'))
    res, conn = run(s, [
        call("/no.Such/Method", b""), CHECK,
        call(HEALTH + "Nope", b""), CHECK,
        call(HEALTH + "Check", b"", content_type="text/plain"), CHECK,
        call(HEALTH + "Check", b"", content_type="-"), CHECK,
        call(HEALTH + "Check", b"", method="PUT"), CHECK,
        call(NANA + "Set", big, sign=SIGN), CHECK,
        call(HEALTH + "Check", b"", compressed=True), CHECK,
        call(HEALTH + "Check", b"", compressed=True, metadata=[["grpc-encoding", "gzip"]]), CHECK,
        call(HEALTH + "Check", raw_body="000000"), CHECK,
        call(HEALTH + "Check"), CHECK,
        call(HEALTH + "Check", b"", b""), CHECK,
        call(HEALTH + "Check", b"\xff\xff"), CHECK,
        call(HEALTH + "Check", b"", timeout="abc"), CHECK,
        call(NANA + "Get", pb((1, b"\xff\xfe"))), CHECK,
        call("/bad path", b""), CHECK,
        call(HEALTH + "Check", b"", metadata=[["x-big", "v" * 2500]]), CHECK,
        call(HEALTH + "Check", b"", metadata=[[f"x-{i}", "v"] for i in range(20)]), CHECK,
        call(HEALTH + "Check", b"", metadata=[["x-huge", "v" * 6000]]), CHECK,
        call(HEALTH + "Check", b"", keep_open=True, cancel_after_ms=300), CHECK,
        call(HEALTH + "Check", b"", metadata=[["te", "gzip"]]), CHECK,
        call(HEALTH + "Check", b"", metadata=[["x-data-bin", "hex:00ff10"]]), CHECK,
        call(HEALTH + "Check", b"", metadata=[["x-data-bin", "!!!"]]), CHECK,
    ])
    def st(i):
        return res[2 * i].get("grpc_status"), res[2 * i].get("status")
    check(st(0) == (UNIMPLEMENTED, 200), "an unknown service: UNIMPLEMENTED", res[0])
    check(st(1) == (UNIMPLEMENTED, 200), "an unknown method: UNIMPLEMENTED", res[2])
    check(st(2) == (-1, 415), "content-type text/plain: HTTP 415", res[4])
    check(st(3) == (-1, 415), "no content-type: HTTP 415", res[6])
    check(st(4) == (-1, 405), "PUT: HTTP 405", res[8])
    check(st(5) == (RESOURCE_EXHAUSTED, 200), "a message over --grpc-max-message-bytes",
          res[10])
    check(st(6) == (INTERNAL, 200), "the compressed flag without grpc-encoding: INTERNAL",
          res[12])
    check(st(7) == (UNIMPLEMENTED, 200) and
          "identity" in res[14].get("headers", {}).get("grpc-accept-encoding", ""),
          "grpc-encoding gzip: UNIMPLEMENTED, grpc-accept-encoding says identity", res[14])
    check(st(8) == (INTERNAL, 200), "a body ending inside a message prefix: INTERNAL", res[16])
    check(st(9) == (INTERNAL, 200), "no request message: INTERNAL", res[18])
    check(st(10) == (UNIMPLEMENTED, 200) or st(10)[0] == INTERNAL,
          "two messages to a unary method: refused", res[20])
    check(st(11) == (INTERNAL, 200), "a request that is not protobuf: INTERNAL", res[22])
    check(st(12) == (INTERNAL, 200), "a malformed grpc-timeout: INTERNAL", res[24])
    check(st(13)[0] in (INTERNAL, INVALID_ARGUMENT), "a key that is not UTF-8: refused", res[26])
    check(st(14)[0] == UNIMPLEMENTED, "a path not of the form /pkg.Service/Method", res[28])
    check(st(15) == (RESOURCE_EXHAUSTED, 200), "a header over --grpc-max-header-bytes", res[30])
    check(st(16) == (RESOURCE_EXHAUSTED, 200), "more than --grpc-max-header-fields", res[32])
    check(st(17) == (RESOURCE_EXHAUSTED, 200), "a header far over the limit", res[34])
    check(res[36].get("error") and res[36].get("grpc_status") == -1,
          "a call cancelled while its request is open", res[36])
    check(res[38].get("reset") == 0x10E, "te: gzip is malformed: reset H3_MESSAGE_ERROR",
          res[38])
    check(st(20) == (OK, 200), "binary metadata in base64", res[40])
    check(st(21) == (INTERNAL, 200), "binary metadata that is not base64: INTERNAL", res[42])
    for i in range(22):
        r = res[2 * i + 1]
        check(r.get("grpc_status") == OK and r.get("messages") == [pb((1, 1)).hex()],
              f"after bad request #{i} the same connection serves", r)
    check(conn.get("error") == "", "the connection stayed up", conn)
    # A GET (quic-go sends no body with it).
    res, _ = run(s, [call(HEALTH + "Check", method="GET"), CHECK])
    check(res[0].get("status") == 405, "GET: HTTP 405", res[0])
    good(s, res, "a GET")
    finish(s)


# ---- deadlines and cancellation ------------------------------------------------------

def test_deadlines():
    s = start("deadline", ["--test-worker-delay-ms", "400"])
    res, _ = run(s, [
        call(NANA + "Set", pb((1, "k"), (2, "1")), sign=SIGN),
        call(NANA + "Call", pb((1, "__len__")), timeout="100m"),
        call(NANA + "Call", pb((1, "__len__")), timeout="100000u"),
        call(NANA + "Call", pb((1, "__len__")), timeout="1n"),
        call(NANA + "Call", pb((1, "__len__")), timeout="5S"),
        call(NANA + "Call", pb((1, "__len__")), timeout="1M"),
        call(NANA + "Call", pb((1, "__len__")), timeout="1H"),
        call(NANA + "Call", pb((1, "__len__")), timeout="0m"),
        CHECK,
    ])
    check(res[0].get("grpc_status") == OK, "Set", res[0])
    for i, what in ((1, "100m"), (2, "100000u"), (3, "1n, expired before it starts"),
                    (7, "0m")):
        check(res[i].get("grpc_status") == DEADLINE_EXCEEDED,
              f"grpc-timeout {what} on a slow call: DEADLINE_EXCEEDED", res[i])
    for i, what in ((4, "5S"), (5, "1M"), (6, "1H")):
        m = unpb(res[i]["messages"][0]) if res[i].get("messages") else {}
        check(res[i].get("grpc_status") == OK and first(m, 1) == b"1",
              f"grpc-timeout {what}: answered", res[i])
    check(res[1].get("ms", 0) < 390, "the 100 ms deadline answered before the call's 400 ms",
          res[1])
    good(s, res, "deadlines")
    finish(s)


def test_cancel():
    s = start("cancel", ["--test-worker-delay-ms", "800", "--workers", "1"])
    res, conn = run(s, [
        call(NANA + "Get", pb((1, "x")), sign=SIGN),
        # The one worker is busy 800 ms with this one...
        call(NANA + "BatchSet", pb((1, pb((1, "first"), (2, "1")))), delay_ms=100),
        # ...so this one waits in the queue and is cancelled there.
        call(NANA + "BatchSet", pb((1, pb((1, "cancelled"), (2, "1")))), delay_ms=300,
             cancel_after_ms=200),
        # Cancelled while it runs: it may finish, the server carries on.
        call(NANA + "Call", pb((1, "__len__")), delay_ms=1200, cancel_after_ms=200),
    ], concurrent=True)
    check(res[1].get("grpc_status") == OK, "the first write", res[1])
    check(res[2].get("grpc_status") != OK and res[2].get("error"),
          "the queued call was cancelled (client side)", res[2])
    check(res[3].get("error"), "the running call was cancelled (client side)", res[3])
    check(conn.get("error") == "", "the connection stayed up", conn)
    time.sleep(1.5)
    res, _ = run(s, [call(NANA + "BatchGet", pb((1, "first"), (1, "cancelled")), sign=SIGN), CHECK])
    items = [unpb(x) for x in unpb(res[0].get("messages", [""])[0]).get(1, [])] \
        if res[0].get("messages") else []
    found = {first(i, 1, b"").decode(): first(i, 2, 0) for i in items}
    check(found == {"first": 1, "cancelled": 0},
          "the cancelled queued write was never applied", found)
    good(s, res, "cancellations")
    finish(s)


# ---- the connection and the server ---------------------------------------------------

def test_concurrent_and_nanasqlite_door_meanwhile():
    s = start("concurrent")
    calls = [call(NANA + "Set", pb((1, "w"), (2, "0")), sign=SIGN)]
    calls += [call(NANA + "Set", pb((1, f"k{i}"), (2, str(i)))) for i in range(40)]
    calls += [call(REFLECT, pb((7, "*")))] + [CHECK] * 10
    res, conn = run(s, calls, concurrent=True)
    # The first call logs in, but the others may race it: the login is per connection.
    later = res[1:41]
    bad = [r for r in later if r.get("grpc_status") not in (OK, UNAUTHENTICATED)]
    check(not bad, "40 concurrent Sets: answered", bad[:3])
    check(all(r.get("grpc_status") == OK for r in res[41:]), "reflection and checks meanwhile")
    r = cli(s, "set", "nana", "1")
    check(r[0] == 0, "the NanaSQLite door serves meanwhile", r)
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


def test_no_grpc():
    s = start("nogrpc", ["--no-grpc"])
    res, conn = run(s, [CHECK])
    check(conn.get("conn") is False, "--no-grpc: the handshake with ALPN h3 fails", conn)
    r = cli(s, "set", "k", "1")
    check(r[0] == 0, "the NanaSQLite door serves", r)
    finish(s)


# ---- HTTP/3 frames by hand (QPACK with the static table and literals only) --------

def qvarint(n):
    """A QUIC variable-length integer (RFC 9000 16), up to 2^30 - 1."""
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 0xFF])
    return (0x80000000 | n).to_bytes(4, "big")


def h3_frame(ftype, payload):
    return qvarint(ftype) + qvarint(len(payload)) + payload


def qpack_ref(index, value):
    """A field line with a static-table name and a literal value."""
    v = value.encode()
    head = bytes([0x50 | index]) if index < 15 else bytes([0x5F, index - 15])
    return head + bytes([len(v)]) + v


def h3_headers(*lines):
    return h3_frame(0x01, b"\x00\x00" + b"".join(lines))


POST, HTTPS = b"\xd4", b"\xd7"  # static entries 20 (:method POST) and 23 (:scheme https)
AUTHORITY = qpack_ref(0, "localhost")
GRPC_CT = qpack_ref(44, "application/grpc")
CHECK_BODY = h3_frame(0x00, b"\x00\x00\x00\x00\x00")  # an empty HealthCheckRequest
SERVING = b"\x00\x00\x00\x00\x02\x08\x01"  # HealthCheckResponse {status: SERVING}


def raw(stream):
    return {"raw_stream": stream.hex()}


def test_malformed_h3():
    """Request streams made by hand: what HTTP/3 makes a stream error is
    answered on the stream and the connection goes on; what it makes a
    connection error closes that connection only, with the right code;
    an unknown frame type is skipped."""
    s = start("malformed")
    check_path = qpack_ref(1, HEALTH + "Check")
    # No :path: the request is malformed; the stream is reset with
    # H3_MESSAGE_ERROR, and the next call on the connection is served.
    res, conn = run(s, [raw(h3_headers(POST, HTTPS, AUTHORITY, GRPC_CT) + CHECK_BODY), CHECK])
    check(res[0].get("reset") == 0x10E, "no :path: stream reset H3_MESSAGE_ERROR", res[0])
    check(res[1].get("grpc_status") == OK, "the connection serves the next call", res[1])
    # An unknown (reserved) frame type before HEADERS is ignored.
    grease = h3_frame(0x21, b"xyz")
    res, conn = run(s, [raw(grease + h3_headers(POST, HTTPS, check_path, AUTHORITY, GRPC_CT) +
                            CHECK_BODY)])
    check(SERVING.hex() in res[0].get("raw", "") and res[0].get("reset") == -1,
          "an unknown frame type is skipped: the call is answered SERVING", res[0])
    # DATA before HEADERS: a connection error, H3_FRAME_UNEXPECTED.
    res, conn = run(s, [raw(CHECK_BODY + h3_headers(POST, HTTPS, check_path, AUTHORITY,
                                                    GRPC_CT))])
    check(res[0].get("conn_error") == 0x105, "DATA first: connection closed H3_FRAME_UNEXPECTED",
          res[0])
    # A QPACK field line naming a static entry that does not exist.
    res, conn = run(s, [raw(h3_frame(0x01, b"\x00\x00\xff\x7f") + CHECK_BODY)])
    check(res[0].get("conn_error") == 0x200,
          "bad QPACK: connection closed QPACK_DECOMPRESSION_FAILED", res[0])
    # A Required Insert Count past what a 4 KiB table can ever reach
    # (RFC 9204 4.5.1.1: encoded 300 > 2 * 128 entries).
    res, conn = run(s, [raw(h3_frame(0x01, b"\xff\x2d\x00\x80") + CHECK_BODY)])
    check(res[0].get("conn_error") == 0x200,
          "an impossible Required Insert Count: connection closed QPACK_DECOMPRESSION_FAILED",
          res[0])
    res, conn = run(s, [CHECK])
    check(res[0].get("grpc_status") == OK, "the server serves new connections after them", res)
    finish(s)


def test_unfinished_request():
    """A request that stops bringing bytes, or is not whole in time, is
    refused with DEADLINE_EXCEEDED (it never ran) and the connection goes
    on; a slow but steady one is not."""
    s = start("unfinished", ["--request-idle-ms", "600", "--request-timeout-ms", "30000"])
    res, conn = run(s, [call(HEALTH + "Check", b"", keep_open=True), CHECK], concurrent=True)
    r = res[0]
    check(r.get("grpc_status") == DEADLINE_EXCEEDED and "no bytes" in r.get("grpc_message", ""),
          "an idle unfinished request: DEADLINE_EXCEEDED", r)
    check(600 <= r.get("ms", 0) < 5000, "after the idle limit, not long after", r.get("ms"))
    check(res[1].get("grpc_status") == OK, "the connection serves meanwhile", res[1])
    finish(s)
    s = start("unwhole", ["--request-idle-ms", "60000", "--request-timeout-ms", "800"])
    res, conn = run(s, [call(HEALTH + "Check", b"", keep_open=True), CHECK])
    r = res[0]
    check(r.get("grpc_status") == DEADLINE_EXCEEDED and "not whole" in r.get("grpc_message", ""),
          "a request not whole in time: DEADLINE_EXCEEDED", r)
    check(res[1].get("grpc_status") == OK, "the next call on the connection is served", res[1])
    finish(s)


def test_gtlsclient_415():
    """ngtcp2's gtlsclient (Debian's ngtcp2-client: an HTTP/3 client on
    nghttp3 that we did not write) POSTs without the gRPC content type:
    each request gets HTTP 415, on one connection that stays usable (both
    streams answered and closed with H3_NO_ERROR)."""
    gtls = shutil.which("gtlsclient")
    check(gtls is not None, "gtlsclient is installed (ngtcp2-client)")
    if gtls is None:
        return
    s = start("gtls")
    body = os.path.join(s.dir, "gtls-body")
    with open(body, "wb") as f:
        f.write(b"not grpc")
    r = subprocess.run([gtls, "--no-quic-dump", "-m", "POST", "-d", body,
                        "--exit-on-all-streams-close", "--timeout=10s", "127.0.0.1", str(s.port),
                        "https://localhost/nanasqlite.v1.NanaSQLite/Get",
                        "https://localhost/grpc.health.v1.Health/Check"],
                       capture_output=True, text=True, timeout=60, cwd=s.dir)
    out = r.stdout + r.stderr
    check(out.count("[:status: 415]") == 2, "gtlsclient: both requests answered 415", out[-2000:])
    check("Negotiated ALPN is h3" in out, "gtlsclient negotiated h3", out[-2000:])
    closed = [ln for ln in out.splitlines() if "closed with error code" in ln]
    check(len(closed) == 2 and all(ln.endswith("code 256") for ln in closed),
          "both streams closed with H3_NO_ERROR (0x100)", closed)
    res, conn = run(s, [CHECK])
    check(res and res[0].get("grpc_status") == 0, "the server serves gRPC after it", res)
    finish(s)


def test_graceful_stop():
    s = start("stop", ["--test-worker-delay-ms", "1500"])
    script = {"addr": f"127.0.0.1:{s.port}", "ca": "ca.pem", "concurrent": True, "timeout_s": 30,
              "calls": [call(NANA + "Call", pb((1, "__len__")), sign=SIGN),
                        call(HEALTH + "Watch", b"", delay_ms=200, cancel_after_ms=8000),
                        # after SIGTERM (and GOAWAY), before the first call ends
                        call(HEALTH + "Check", b"", delay_ms=1100)]}
    path = os.path.join(s.dir, "stop-script.json")
    with open(path, "w") as f:
        json.dump(script, f)
    p = subprocess.Popen([CLIENT], stdin=open(path), stdout=subprocess.PIPE, text=True,
                         cwd=s.dir)
    time.sleep(0.7)  # both calls are in flight
    s.proc.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    check(len(lines) == 4, "the client finished", out)
    if len(lines) == 4:
        r = lines[0]
        m = unpb(r["messages"][0]) if r.get("messages") else {}
        check(r.get("grpc_status") == OK and first(m, 1) == b"0",
              "the call in flight at SIGTERM completed", r)
        w = lines[1]
        msgs = w.get("messages", [])
        check(msgs == [pb((1, 1)).hex(), pb((1, 2)).hex()],
              "Watch saw SERVING, then NOT_SERVING", w)
        check(w.get("grpc_status") == UNAVAILABLE, "and ended with UNAVAILABLE", w)
        check(lines[2].get("reset") == 0x10B,
              "a request sent after GOAWAY: rejected with H3_REQUEST_REJECTED", lines[2])
        check(lines[3].get("goaway", -1) >= 0, "the server sent GOAWAY", lines[3])
    try:
        s.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    check(s.proc.returncode == 0, "the server stopped cleanly", s.proc.returncode)
    s.stop()


# ---- set-up ---------------------------------------------------------------------------

def setup():
    """Builds grpc_h3_client (quic-go, offline) into BUILD/interop."""
    global CLIENT
    out = os.path.join(os.path.abspath(ARGS.build_dir), "interop")
    b = subprocess.run(["sh", os.path.join(ROOT, "tests/interop/build-quicgo.sh"), out,
                        "tests/interop/grpc_h3_client.go"], capture_output=True, text=True,
                       timeout=600)
    if b.returncode != 0:
        print("  FAIL: building grpc_h3_client\n" + b.stderr)
        return False
    CLIENT = os.path.join(out, "grpc_h3_client")
    serverlib.ARGS = ARGS
    return shutil.which(CLIENT) is not None or os.path.exists(CLIENT)


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
