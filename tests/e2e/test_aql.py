#!/usr/bin/env python3
"""AQL (the AmateRS query service) on the gRPC door end to end: the real
nanasqlite-server on loopback, called by aql_h3_client
(tests/interop/aql_h3_client.go), whose messages Go's protobuf builds and
reads from Go code generated at build time out of proto/amaters*.proto, over
quic-go's HTTP/3. The data AQL writes is read through the NanaSQLite door
(wire_driver) and the other way round.

Each test checks that the server is alive afterwards and that its log has no
sanitizer report. The sanitizer build (NANA_SANITIZED=1) streams fewer rows
and prints the memory figures instead of checking them.

Usage: test_aql.py --bin-dir DIR --build-dir DIR --driver WIRE_DRIVER [--tmp DIR] [TEST...]
"""
import base64
import json
import os
import select
import subprocess
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None
CLIENT = None  # the aql_h3_client binary
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZED = os.environ.get("NANA_SANITIZED") == "1"
SIGN = {"account": "default", "key": "nana_private.pem"}

OK, DEADLINE_EXCEEDED, UNAUTHENTICATED = 0, 4, 16


# ---- the client -------------------------------------------------------------------

def run(s, ops, sign=True, metadata=None, timeout=120):
    """Runs |ops| on one connection to |s|; returns (results, connection line)."""
    script = {"addr": f"127.0.0.1:{s.port}", "ca": "ca.pem", "ops": ops, "timeout_s": timeout}
    if sign:
        script["sign"] = SIGN
    if metadata:
        script["metadata"] = metadata
    p = subprocess.run([CLIENT], input=json.dumps(script), capture_output=True, text=True,
                       cwd=s.dir, timeout=timeout + 30)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    if p.returncode != 0 or len(lines) != len(ops) + 1:
        check(False, "aql_h3_client ran", f"rc={p.returncode} {p.stderr[-2000:]}")
        return [{} for _ in ops], {"conn": False, "error": p.stderr}
    return lines[:-1], lines[-1]


def keyf(op, name, k):
    """Puts key |k| (str: UTF-8 text, bytes: as they are) into |op| as |name|."""
    if isinstance(k, bytes):
        op[name + "_hex"] = k.hex()
    elif k is not None:
        op[name] = k


def q_set(coll, key, value, **kw):
    """A set: |value| str is sent as its UTF-8 bytes, bytes as they are."""
    op = {"op": "set", "collection": coll, **kw}
    keyf(op, "key", key)
    if isinstance(value, bytes):
        op["value_hex"] = value.hex()
    else:
        op["value_json"] = value
    return op


def q_get(coll, key, **kw):
    op = {"op": "get", "collection": coll, **kw}
    keyf(op, "key", key)
    return op


def q_del(coll, key, **kw):
    op = {"op": "delete", "collection": coll, **kw}
    keyf(op, "key", key)
    return op


def q_range(coll, start, end, **kw):
    op = {"op": "range", "collection": coll, **kw}
    keyf(op, "start", start)
    keyf(op, "end", end)
    return op


def q_filter(coll, pred, **kw):
    return {"op": "filter", "collection": coll, "predicate": pred, **kw}


def q_update(coll, pred, *updates, **kw):
    """An update; |pred| None: no predicate (every object)."""
    op = {"op": "update", "collection": coll, "updates": list(updates), **kw}
    if pred is not None:
        op["predicate"] = pred
    return op


def resp(r):
    return r.get("response") or {}


def err_code(r):
    """The ErrorResponse code name of a query's answer (None: no error)."""
    return (resp(r).get("error") or {}).get("code", "ERROR_UNKNOWN" if "error" in resp(r)
                                             else None)


def answered(r):
    return r.get("grpc_status") == OK and "result" in resp(r)


def b64(s):
    return base64.b64decode(s or "")


def single(r):
    """A get's value bytes; None when the key has none."""
    v = ((resp(r).get("result") or {}).get("single") or {}).get("value")
    return None if v is None else b64(v.get("data"))


def single_meta(r):
    v = ((resp(r).get("result") or {}).get("single") or {}).get("value") or {}
    return v.get("metadata") or {}


def pairs(r):
    """A range's or filter's [(key text, value bytes)]."""
    vals = ((resp(r).get("result") or {}).get("multi") or {}).get("values", [])
    return [(b64(kv.get("key", {}).get("data")).decode("utf-8", "replace"),
             b64((kv.get("value") or {}).get("data"))) for kv in vals]


def keys(r):
    return [k for k, _ in pairs(r)]


def affected(r):
    s = (resp(r).get("result") or {}).get("success")
    return None if s is None else int(s.get("affected_rows", 0))


def start(name, flags=()):
    return Server("aql-" + name, list(flags)).start()


def finish(s):
    check(s.alive(), "server alive")
    s.stop()


# ---- the NanaSQLite door (wire_driver) -------------------------------------------------

class Driver:
    """wire_driver logged in on |s| (account default)."""

    def __init__(self, s):
        self.p = subprocess.Popen([ARGS.driver, os.path.join(s.dir, "cert.pem")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  cwd=s.dir)
        r = self.cmd(op="connect", id="a", port=s.port, ca="cert.pem")
        check(r.get("open"), "wire_driver connected", r)
        r = self.cmd(op="auth", id="a", key="nana_private.pem")
        check(r.get("reply") == "AUTH_OK", "wire_driver logged in", r)

    def cmd(self, timeout=30, **c):
        self.p.stdin.write(json.dumps(c) + "\n")
        self.p.stdin.flush()
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError(f"driver timed out on {c}")
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("driver exited")
        return json.loads(line)

    def call(self, method, *args, **kw):
        r = self.cmd(op="call", id="a", method=method, args=list(args), **kw).get("reply")
        return r.get("result") if isinstance(r, dict) and r.get("status") == "success" \
            else ("ERR", r)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


# ---- health, info, login --------------------------------------------------------------

def test_health_and_info():
    s = start("health")
    res, conn = run(s, [{"op": "health"}, {"op": "info"},
                        {"op": "health", "service": "amaters.aql.AqlService"}], sign=False)
    check(res[0].get("grpc_status") == OK and resp(res[0]).get("status") == "HEALTH_SERVING",
          "HealthCheck: SERVING", res[0])
    info = resp(res[1])
    check(res[1].get("grpc_status") == OK and "version" in info and
          info.get("supported_versions") and info["version"] in info["supported_versions"],
          "GetServerInfo: a version, among the supported ones", res[1])
    check(int(info.get("uptime_seconds", "0")) < 3600, "GetServerInfo: the uptime", info)
    check(res[2].get("grpc_status") == OK and resp(res[2]).get("status") == "HEALTH_SERVING",
          "HealthCheck of amaters.aql.AqlService: SERVING", res[2])
    check(conn.get("error") == "", "the connection stayed up", conn)
    # Queries need the door's login.
    res, _ = run(s, [q_get("", "k")], sign=False)
    check(res[0].get("grpc_status") == UNAUTHENTICATED, "ExecuteQuery without login", res[0])
    res, _ = run(s, [{"op": "amaters_execute", "query": q_get("", "k")}], sign=False)
    check(res[0].get("grpc_status") == UNAUTHENTICATED, "/AmateRS/Execute without login",
          res[0])
    finish(s)


# ---- every query kind, on both services ----------------------------------------------

def query_kinds(s, via):
    """Every query kind on ExecuteQuery (via "") or /AmateRS/Execute (via "amaters")."""
    c = "kinds_" + (via or "aql")
    kw = {"via": via} if via else {}
    ops = [
        q_set(c, "a", '{"n": 1}', request_id="id-set", **kw),
        q_get(c, "a", request_id="id-get", **kw),
        q_get(c, "absent", **kw),
        q_set(c, "b", '{"n": 2}', **kw),
        q_set(c, "c", '{"n": 3}', **kw),
        q_range(c, "a", "c", request_id="id-range", **kw),
        q_filter(c, {"gte": ["n", "2"]}, request_id="id-filter", **kw),
        q_update(c, {"lte": ["n", "2"]}, {"add": ["n", "10"]}, request_id="id-update", **kw),
        q_get(c, "b", **kw),
        q_del(c, "a", request_id="id-del", **kw),
        q_get(c, "a", **kw),
        q_del(c, "a", **kw),
    ]
    res, conn = run(s, ops)
    what = via or "ExecuteQuery"
    check(all(r.get("grpc_status") == OK for r in res), f"{what}: every call status 0",
          [r.get("grpc_status") for r in res])
    check(affected(res[0]) == 1, f"{what}: set: affected_rows 1", res[0])
    check(single(res[1]) == b'{"n": 1}', f"{what}: get: the value", res[1])
    meta = single_meta(res[1])
    check(int(meta.get("size", 0)) == 8 and int(meta.get("checksum", 0)) ==
          zlib.crc32(b'{"n": 1}'), f"{what}: get: metadata size and CRC-32", meta)
    check(answered(res[2]) and single(res[2]) is None, f"{what}: get of an absent key: no value",
          res[2])
    check(pairs(res[5]) == [("a", b'{"n": 1}'), ("b", b'{"n": 2}')],
          f"{what}: range [a, c)", res[5])
    check(keys(res[6]) == ["b", "c"], f"{what}: filter n >= 2", res[6])
    check(affected(res[7]) == 2, f"{what}: update of 2 rows", res[7])
    check(json.loads(single(res[8]) or b"null") == {"n": 12}, f"{what}: the update applied",
          res[8])
    check(affected(res[9]) == 1, f"{what}: delete: affected_rows 1", res[9])
    check(answered(res[10]) and single(res[10]) is None, f"{what}: get after delete", res[10])
    check(affected(res[11]) == 0, f"{what}: delete of an absent key: affected_rows 0",
          res[11])
    for i, rid in ((0, "id-set"), (1, "id-get"), (5, "id-range"), (6, "id-filter"),
                   (7, "id-update"), (9, "id-del")):
        check(resp(res[i]).get("request_id") == rid, f"{what}: request_id echoed", res[i])
    check("request_id" not in resp(res[2]), f"{what}: no request_id when none was sent",
          res[2])
    if via == "amaters":
        check(all(r.get("server_proof") == "" for r in res),
              "AmateRS: no server_proof unless asked", [r.get("server_proof") for r in res])
    check(conn.get("error") == "", "the connection stayed up", conn)


def test_query_kinds():
    s = start("kinds")
    query_kinds(s, "")
    query_kinds(s, "amaters")
    # query_bytes that are no QueryRequest; proofs asked for.
    res, _ = run(s, [
        {"op": "amaters_execute", "query": q_get("kinds_aql", "b")},
        {"op": "amaters_execute", "query_bytes_hex": "ffffffff"},
        {"op": "amaters_execute", "query": q_get("kinds_aql", "b", request_id="x"),
         "proof": True},
        dict(q_get("kinds_aql", "b"), proof=True),
        {"op": "health"},
    ])
    check(res[0].get("grpc_status") == OK and
          json.loads(single(res[0]) or b"null") == {"n": 12},
          "AmateRS: the update made through ExecuteQuery", res[0])
    check(res[1].get("grpc_status") == OK and
          err_code(res[1]) == "ERROR_PROTOCOL_MALFORMED_MESSAGE",
          "AmateRS: query_bytes that are no QueryRequest: ERROR_PROTOCOL_MALFORMED_MESSAGE",
          res[1])
    check(res[2].get("grpc_status") == OK and res[2].get("server_proof"),
          "AmateRS with nana-proof: 1: a server_proof", res[2])
    check(res[3].get("grpc_status") == OK and res[3].get("trailers", {}).get("nana-proof-bin"),
          "ExecuteQuery with nana-proof: 1: trailer nana-proof-bin", res[3])
    check(res[4].get("grpc_status") == OK, "the connection serves after them", res[4])
    finish(s)


# ---- values and keys, and the NanaSQLite door's view -----------------------------------

def test_values_round_trip_and_other_door():
    s = start("values")
    deep_ok = "[" * 128 + "]" * 128
    deep_bad = "[" * 129 + "]" * 129
    cases = [  # (key, bytes sent, stored as JSON?)
        ("spaced", b'{ "a" :1 ,\n "b":[1, 2.50, "\\u00e9"] }', True),
        ("num", b"30", True),
        ("str", b'"Tokyo"', True),
        ("bin", bytes(range(256)), False),
        ("empty", b"", False),
        ("text", b"not json", False),
        ("badutf8", b'"\xff\xfe"', False),
        ("two", b"1 2", False),
        ("deep_ok", deep_ok.encode(), True),
        ("deep_bad", deep_bad.encode(), False),
        ("dollar", b'{"$bytes":"AAE="}', False),
    ]
    ops = [q_set("", k, v) for k, v, _ in cases] + [q_get("", k) for k, _, _ in cases]
    res, _ = run(s, ops)
    n = len(cases)
    for i, (k, v, _) in enumerate(cases):
        check(affected(res[i]) == 1, f"set {k}", res[i])
        check(single(res[n + i]) == v, f"{k}: read back through AQL byte for byte",
              (single(res[n + i]), v))
        meta = single_meta(res[n + i])
        check(int(meta.get("size", 0)) == len(v) and int(meta.get("checksum", 0)) ==
              zlib.crc32(v), f"{k}: size and checksum", meta)
    d = Driver(s)
    for k, v, is_json in cases:
        got = d.call("__getitem__", k)
        if is_json:
            want = json.loads(v)
        else:
            want = {"$bytes": base64.b64encode(v).decode().rstrip("=")}  # no padding
        check(got == want, f"{k}: the NanaSQLite door reads the same value", (got, want))
    # The other way: set through the NanaSQLite door, read through AQL.
    check(d.call("__setitem__", "from_nana", {"x": [1, "é", None]}) is None,
          "NanaSQLite set")
    check(d.call("__setitem__", "t1", 5, table="people") is None, "NanaSQLite set in a table")
    check(d.call("__setitem__", "wrapped", {"$bytes": "AAEC/w"}) is None,
          "NanaSQLite set of a $bytes object")
    res, _ = run(s, [q_get("", "from_nana"), q_get("people", "t1"), q_get("data", "from_nana"),
                     q_get("", "wrapped"), q_set("people", "t2", '{"y": 2}')])
    check(json.loads(single(res[0]) or b"null") == {"x": [1, "é", None]},
          "AQL reads the NanaSQLite door's value", res[0])
    check(single(res[1]) == b"5", "collection people = the NanaSQLite table people", res[1])
    check(json.loads(single(res[2]) or b"null") == {"x": [1, "é", None]},
          "collection data = collection ''", res[2])
    check(single(res[3]) == b"\x00\x01\x02\xff", "a $bytes object reads as its bytes", res[3])
    check(d.call("__getitem__", "t2", table="people") == {"y": 2},
          "an AQL set in a collection read through its table", "")
    d.close()
    finish(s)


def test_bad_keys_and_values():
    s = start("badkeys")
    res, conn = run(s, [
        q_set("", b"\xff\xfe", "1"),
        q_get("", b"ok\xc3"),
        q_del("", b"\x80"),
        q_range("", b"\xff", "z"),
        q_set("", "k", "1", compression=1),
        q_set("", "k", "2", compression=2),
        q_set("bad name!", "k", "1"),
        q_get("", "k"),
        {"op": "health"},
    ])
    for i, what in enumerate(("set", "get", "delete", "range")):
        check(res[i].get("grpc_status") == OK and
              err_code(res[i]) == "ERROR_VALIDATION_INVALID_KEY",
              f"{what} with a key that is not UTF-8: ERROR_VALIDATION_INVALID_KEY (6000)", res[i])
    for i in (4, 5):
        check(res[i].get("grpc_status") == OK and
              err_code(res[i]) == "ERROR_VALIDATION_INVALID_VALUE",
              "a compressed value: ERROR_VALIDATION_INVALID_VALUE", res[i])
    check(res[6].get("grpc_status") == OK and err_code(res[6]) is not None,
          "a collection that is no table name: an ErrorResponse", res[6])
    check(answered(res[7]) and single(res[7]) is None, "nothing of them was stored", res[7])
    check(res[8].get("grpc_status") == OK, "the connection serves after them", res[8])
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


# ---- range and filter -----------------------------------------------------------------

def test_range():
    s = start("range")
    ks = [f"k{i:02d}" for i in range(20)]
    odd = ["B", "a", "ab", "b", "é", "z", "k05x"]
    ops = [q_set("r", k, str(i)) for i, k in enumerate(ks + odd)]
    ops.append(q_set("other", "k07", "1"))
    ops += [
        q_range("r", "k05", "k10"),
        q_range("r", "k05", "k10", limit=3),
        q_range("r", "k05", "k05"),
        q_range("r", "k10", "k05"),
        q_range("r", "A", "\u00ff"),
        q_range("r", "k19", "k2"),
        q_range("r", "k05", "k10", limit=0),
        q_range("nosuch", "a", "z"),
    ]
    res, _ = run(s, ops)
    r = res[len(ks) + len(odd) + 1:]
    check(keys(r[0]) == ["k05", "k05x", "k06", "k07", "k08", "k09"],
          "range [k05, k10): start included, end excluded, key order, this collection only",
          keys(r[0]))
    check(pairs(r[0])[0] == ("k05", b"5"), "range: the values", pairs(r[0])[:1])
    check(keys(r[1]) == ["k05", "k05x", "k06"], "range with limit 3", keys(r[1]))
    check(answered(r[2]) and keys(r[2]) == [], "range [k05, k05): empty", r[2])
    check(keys(r[3]) == [] or err_code(r[3]) is not None, "range with start > end: nothing",
          r[3])
    check(keys(r[4]) == sorted(ks + odd, key=lambda x: x.encode()),
          "a range over all: byte order (B < a < ab < b < k.. < z < é)", keys(r[4]))
    check(keys(r[5]) == ["k19"], "range [k19, k2)", keys(r[5]))
    check(answered(r[6]), "range with limit 0 answered", r[6])
    check(answered(r[7]) and keys(r[7]) == [], "range of a collection that does not exist",
          r[7])
    finish(s)


PEOPLE = {
    "p1": {"name": "Ann", "age": 35, "address": {"city": "Tokyo"}, "tags": ["a", "b"],
           "vip": True},
    "p2": {"name": "Bob", "age": 28, "address": {"city": "Tokyo"}, "tags": ["b"]},
    "p3": {"name": "Cy", "age": 42, "address": {"city": "Osaka"}, "tags": [], "vip": False},
    "p4": {"name": "Di", "age": "thirty", "address": {"city": "Tokyo"}, "note": None},
    "p5": {"name": "Ed", "address": {"city": "Tokyo"}, "tags": ["a"]},
    "p6": {"name": "Fay", "age": 30.0, "address": "Tokyo", "vip": True},
    "p7": {"name": "Gus", "age": 51, "address": {"city": "Kyoto", "zip": {"code": "600"}}},
}


def test_filter():
    s = start("filter")
    ops = [q_set("people", k, json.dumps(v)) for k, v in PEOPLE.items()]
    ops.append(q_set("people", "raw", b"\x00\x01"))  # not JSON: no field matches
    preds = [
        ({"and": [{"gte": ["age", "30"]}, {"eq": ["address.city", '"Tokyo"']}]}, ["p1"]),
        ({"gte": ["age", "30"]}, ["p1", "p3", "p6", "p7"]),
        ({"lt": ["age", "30"]}, ["p2"]),
        ({"not": {"gte": ["age", "30"]}}, ["p2", "p4", "p5", "raw"]),
        ({"eq": ["age", '"thirty"']}, ["p4"]),
        ({"gt": ["age", '"a"']}, ["p4"]),
        ({"eq": ["address.city", '"Tokyo"']}, ["p1", "p2", "p4", "p5"]),
        ({"eq": ["address.zip.code", '"600"']}, ["p7"]),
        ({"eq": ["tags[0]", '"a"']}, ["p1", "p5"]),
        ({"eq": ["tags[1]", '"b"']}, ["p1"]),
        ({"eq": ["vip", "true"]}, ["p1", "p6"]),
        ({"eq": ["note", "null"]}, ["p4"]),
        ({"eq": ["tags", '["b"]']}, ["p2"]),
        ({"eq": ["address", '{"city":"Osaka"}']}, ["p3"]),
        ({"or": [{"eq": ["name", '"Bob"']}, {"gt": ["age", "50"]}]}, ["p2", "p7"]),
        ({"or": [{"eq": ["name", '"Bob"']}, {"eq": ["name", '"Cy"']},
                 {"eq": ["name", '"Ed"']}]}, ["p2", "p3", "p5"]),
        ({"eq": ["nosuch", "1"]}, []),
        ({"lte": ["name", '"Bob"']}, ["p1", "p2"]),
        ({"and": [{"not": {"eq": ["vip", "true"]}}, {"gte": ["age", "0"]}]}, ["p2", "p3", "p7"]),
        ({"eq": ["age", "30"]}, ["p6"]),
    ]
    ops += [q_filter("people", p) for p, _ in preds]
    ops += [
        q_filter("people", {"eq": ["address.city", '"Tokyo"']}, limit=2),
        q_filter("people", {"eq": ["address.city", '"Tokyo"']}, limit=2, offset=1),
        q_filter("people", {"eq": ["address.city", '"Tokyo"']}, offset=3),
        q_filter("people", {"eq": ["address.city", '"Tokyo"']}, offset=10),
    ]
    res, _ = run(s, ops)
    r = res[len(PEOPLE) + 1:]
    for i, (p, want) in enumerate(preds):
        check(keys(r[i]) == want, f"filter {json.dumps(p)}", (keys(r[i]), want, r[i].get(
            "grpc_status"), resp(r[i]).get("error")))
    check(pairs(r[0]) == [("p1", json.dumps(PEOPLE["p1"]).encode())], "filter: the values",
          pairs(r[0]))
    n = len(preds)
    check(keys(r[n]) == ["p1", "p2"], "filter limit 2", keys(r[n]))
    check(keys(r[n + 1]) == ["p2", "p4"], "filter limit 2 offset 1", keys(r[n + 1]))
    check(keys(r[n + 2]) == ["p5"], "filter offset 3", keys(r[n + 2]))
    check(answered(r[n + 3]) and keys(r[n + 3]) == [], "filter offset past the end",
          r[n + 3])
    finish(s)


# ---- update ---------------------------------------------------------------------------

def test_update():
    s = start("update")
    rows = {"u1": {"id": "u1", "n": 1, "g": "x", "m": {"v": 2}},
            "u2": {"id": "u2", "n": 2.5, "g": "x"},
            "u3": {"id": "u3", "g": "x"},
            "u4": {"id": "u4", "n": 100, "g": "y"},
            "u5": {"id": "u5", "n": "str", "g": "z"}}
    ops = [q_set("u", k, json.dumps(v)) for k, v in rows.items()]
    gx = {"eq": ["g", '"x"']}
    ops += [
        q_update("u", gx, {"add": ["n", "10"]}),
        q_update("u", gx, {"mul": ["n", "2"]}),
        q_update("u", {"eq": ["id", '"u1"']}, {"set": ["m.v", '"new"']},
                 {"set": ["extra", '{"deep": [1]}']}),
        q_update("u", {"eq": ["id", '"u4"']}, {"mul": ["missing", "7"]},
                 {"add": ["n", "-0.5"]}),
        q_update("u", {"eq": ["g", '"none"']}, {"set": ["n", "0"]}),
        q_update("u", gx, {"add": ["n", '"ten"']}),
        q_update("u", gx, {"mul": ["n", "true"]}),
        q_update("u", None, {"add": ["n", "1"]}),
    ]
    ops += [q_get("u", k) for k in rows]
    res, _ = run(s, ops)
    r = res[len(rows):]
    check(affected(r[0]) == 3, "update add: affected_rows 3", r[0])
    check(affected(r[1]) == 3, "update mul: affected_rows 3", r[1])
    check(affected(r[2]) == 1, "update set (two fields): affected_rows 1", r[2])
    check(affected(r[3]) == 1, "update mul of a missing field, add", r[3])
    check(affected(r[4]) == 0 and answered(r[4]), "an update matching nothing: 0", r[4])
    for i in (5, 6):
        check(err_code(r[i]) is not None, "add/mul of a value that is no number: an error",
              r[i])
    check(err_code(r[7]) == "ERROR_COMPUTE_INVALID_OPERATION",
          "add to a field holding a string (u5): ERROR_COMPUTE_INVALID_OPERATION, nothing changed",
          r[7])
    got = {k: json.loads(single(x) or b"null") for k, x in zip(rows, r[8:])}
    check(got["u1"] == {"id": "u1", "n": 22, "g": "x", "m": {"v": "new"},
                        "extra": {"deep": [1]}}, "u1: (1 + 10) * 2, set nested", got["u1"])
    check(got["u2"] == {"id": "u2", "n": 25, "g": "x"}, "u2: (2.5 + 10) * 2", got["u2"])
    check(got["u3"] == {"id": "u3", "g": "x", "n": 20}, "u3: a missing field counts as 0",
          got["u3"])
    check(got["u4"] == {"id": "u4", "n": 99.5, "g": "y", "missing": 0},
          "u4: mul of a missing field gives 0; the failed updates changed nothing", got["u4"])
    check(got["u5"] == rows["u5"], "u5 unchanged", got["u5"])
    finish(s)


def test_update_races():
    """Updates that add 1 to one row, from two connections at once, with sets
    of other rows and other updates of the same row among them: no update is
    lost."""
    s = start("race")
    res, _ = run(s, [q_set("race", "c", '{"id": "c", "n": 0}')])
    check(affected(res[0]) == 1, "set the counter", res[0])
    per = 60 if SANITIZED else 150
    pred = {"eq": ["id", '"c"']}

    def ops(tag):
        par = []
        for i in range(per):
            par.append(q_update("race", pred, {"add": ["n", "1"]}))
            par.append(q_set("race", f"{tag}{i}", json.dumps({"id": f"{tag}{i}", "n": i})))
            if i % 10 == 0:
                par.append(q_update("race", pred, {"set": [f"f_{tag}", str(i)]}))
        # The login first: the connection's later calls need none.
        return [q_get("race", "c"), {"op": "parallel", "ops": par}]
    out = [None, None]

    def go(j, tag):
        out[j] = run(s, ops(tag), timeout=240)
    ts = [threading.Thread(target=go, args=(j, t)) for j, t in enumerate(("x", "y"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    adds = []
    for o in out:
        sub = (o[0][1].get("results") or []) if o else []
        adds += [x for x in sub if x.get("op") == "update"]
        check(len(sub) > 0 and all(x.get("grpc_status") == OK and answered(x) for x in sub),
              "every racing query answered", [x for x in sub if not answered(x)][:3])
    res, _ = run(s, [q_get("race", "c"), q_filter("race", {"gte": ["n", "0"]})])
    v = json.loads(single(res[0]) or b"{}")
    check(v.get("n") == 2 * per, f"no lost update: n == {2 * per}", v)
    check(sum(affected(x) or 0 for x in adds) == 2 * per + 2 * len(range(0, per, 10)),
          "every update changed one row", sum(affected(x) or 0 for x in adds))
    check(len(keys(res[1])) == 2 * per + 1, "every racing set stored", len(keys(res[1])))
    finish(s)


# ---- batch ----------------------------------------------------------------------------

def batch_results(r):
    return ((resp(r).get("results") or {}).get("results")) or []


def test_batch():
    s = start("batch")
    res, _ = run(s, [
        {"op": "batch", "request_id": "b1", "queries": [
            q_set("b", "x", '{"v":1}'), q_get("b", "x"), q_set("b", "y", '{"v":2}'),
            q_update("b", {"gte": ["v", "0"]}, {"add": ["v", "1"]}), q_range("b", "a", "z"),
            q_del("b", "y"), q_get("b", "y")]},
        {"op": "batch", "request_id": "b2", "queries": [
            q_set("b", "before", "1"), q_set("b", b"\xff", "1"), q_set("b", "after", "1")]},
        {"op": "batch", "queries": [
            q_set("b", "before2", "1"), q_set("b", "sx", '{"v": "str"}'),
            q_update("b", None, {"add": ["v", "1"]}), q_set("b", "after2", "1")]},
        {"op": "batch", "queries": []},
        q_range("b", "a", "zz"),
    ])
    r = res[0]
    br = batch_results(r)
    check(r.get("grpc_status") == OK and len(br) == 7, "a batch of 7: 7 results", r)
    check(resp(r).get("request_id") == "b1", "batch: request_id echoed", resp(r))
    if len(br) == 7:
        check("success" in br[0] and "single" in br[1] and "multi" in br[4] and
              "success" in br[5] and "single" in br[6], "the results in the queries' order",
              br)
        check(b64(br[1]["single"].get("value", {}).get("data")) == b'{"v":1}',
              "a get sees the set before it in the batch", br[1])
        check(int(br[3]["success"].get("affected_rows", 0)) == 2, "the update in the batch",
              br[3])
        vals = [(b64(kv["key"]["data"]), json.loads(b64(kv["value"]["data"])))
                for kv in br[4]["multi"].get("values", [])]
        check(vals == [(b"x", {"v": 2}), (b"y", {"v": 3})], "a range in the batch sees the update",
              vals)
        check("value" not in br[6]["single"], "a get after a delete in the batch", br[6])
    for i in (1, 2):
        check(res[i].get("grpc_status") == OK and
              (resp(res[i]).get("error") or {}).get("code"),
              "a failing query in the middle: BatchResponse.error", res[i])
        check("results" not in resp(res[i]), "and no results", res[i])
    check(err_code(res[1]) == "ERROR_VALIDATION_INVALID_KEY" and
          (resp(res[1]).get("error") or {}).get("message", "").startswith("query 1:"),
          "its code: the bad key's; its message names query 1", res[1])
    check(err_code(res[2]) == "ERROR_COMPUTE_INVALID_OPERATION",
          "an add to a string field in a batch: ERROR_COMPUTE_INVALID_OPERATION", res[2])
    check(res[3].get("grpc_status") == OK, "an empty batch", res[3])
    check(keys(res[4]) == ["x"], "nothing of the failed batches is visible afterwards",
          keys(res[4]))
    finish(s)


# ---- ExecuteStream ----------------------------------------------------------------------

def total(r):
    """A stream's StreamEnd total_count (-1: no StreamEnd came)."""
    return -1 if r.get("end") is None else int(r["end"].get("total_count", 0))


def test_stream_large():
    """A range of many rows read slowly through ExecuteStream: the server
    keeps up to what the client reads (its VmRSS grows far less than the
    data while the client is slow), every row comes in order in sequenced
    batches, and a StreamEnd closes it."""
    n = 20000 if SANITIZED else 1000000
    pad = 400 if SANITIZED else 40
    s = start("stream")
    per = 1000  # a batch's most queries
    ops = [{"op": "batch", "generate": {"n": per, "start": i, "kind": "set",
                                        "collection": "big", "pad": pad}}
           for i in range(0, n, per)]
    # the first batch alone (the client signs only its connection's first
    # call: the others must not overtake it), then eight at a time on the
    # connection (they group-commit together)
    groups, _ = run(s, [ops[0]] + [{"op": "parallel", "ops": ops[i:i + 8]}
                                   for i in range(1, len(ops), 8)], timeout=600)
    res = [groups[0]] + [r for g in groups[1:] for r in (g.get("results") or [{}] * 8)]
    check(all(r.get("grpc_status") == OK and len(batch_results(r)) == per for r in res),
          f"{n} rows stored by {len(ops)} batches",
          [(r.get("grpc_status"), resp(r).get("error")) for r in res if
           r.get("grpc_status") != OK or "error" in resp(r)][:2])
    data_mb = n * (pad + 20) // (1 << 20)
    res, conn = run(s, [
        {"op": "stream", "query": q_range("big", "k", "l"), "read_delay_ms": 200,
         "slow_for_ms": 4000, "watch_pid": s.proc.pid, "keep_values": 2},
        {"op": "stream", "query": q_filter("big", {"lt": ["i", "5"]}), "keep_values": 10},
        {"op": "stream", "query": q_range("big", "k0000010", "k0000013")},
        {"op": "stream", "query": q_range("big", "x", "y")},
        {"op": "stream", "query": q_get("big", "k0000001")},
        {"op": "stream", "query": q_range("big", b"\xff", "z")},
        {"op": "health"},
    ], timeout=600)
    r = res[0]
    check(r.get("grpc_status") == OK and r.get("error") == "", "the large stream ended well", r)
    check(r.get("nvalues") == n and r.get("keys_sorted"), f"{n} rows, in key order",
          (r.get("nvalues"), r.get("keys_sorted")))
    check(r.get("sequences_ok") and r.get("end_sequence") == r.get("nmessages", 0) - 1 and
          r.get("after_end") == 0, "sequences 0..n, StreamEnd last",
          {k: r.get(k) for k in ("sequences_ok", "end_sequence", "nmessages", "after_end")})
    check(total(r) == n, "StreamEnd{total_count}",
          r.get("end"))
    check(r.get("has_more_false", 0) <= 1 and r.get("nmessages", 0) > 2,
          "batches with has_more until the last", (r.get("has_more_false"), r.get("nmessages")))
    vals = r.get("values") or []
    check(len(vals) == 2 and json.loads(b64(vals[0]["value"]["data"]))["i"] == 0,
          "the first pair's value", vals[:1])
    grew = (r.get("rss_max_slow_kb", 0) - r.get("rss_base_kb", 0)) // 1024
    print(f"  stream: {r.get('nmessages')} messages; VmRSS KiB base {r.get('rss_base_kb')}, "
          f"slow max {r.get('rss_max_slow_kb')}, max {r.get('rss_max_kb')}", flush=True)
    what = (f"the server's VmRSS grew {grew} MiB while the client read slowly "
            f"({data_mb} MiB of data; bound {data_mb // 3} MiB)")
    if SANITIZED:
        print(f"  (sanitizer build, not checked) {what}")
    else:
        check(r.get("rss_base_kb", -1) > 0 and grew < data_mb // 3, what,
              {k: r.get(k) for k in ("rss_base_kb", "rss_max_slow_kb", "rss_max_kb")})
    f = res[1]
    check(f.get("grpc_status") == OK and f.get("nvalues") == 5 and
          total(f) == 5 and f.get("sequences_ok"),
          "a streamed filter: 5 rows and its end", {k: f.get(k) for k in (
              "grpc_status", "nvalues", "end", "sequences_ok", "errors")})
    check(res[2].get("nvalues") == 3 and total(res[2])
          == 3, "a small streamed range", res[2])
    e = res[3]
    check(e.get("grpc_status") == OK and e.get("nvalues") == 0 and
          total(e) == 0 and e.get("end_sequence") ==
          e.get("nmessages", 0) - 1, "an empty range: a StreamEnd{0}", e)
    g = res[4]
    errs = g.get("errors") or []
    check(len(errs) == 1 and g.get("nmessages") == 1 and
          errs[0].get("error", {}).get("code") == "ERROR_PROTOCOL_INVALID_REQUEST",
          "a get on ExecuteStream: one error message, ERROR_PROTOCOL_INVALID_REQUEST", g)
    b = res[5]
    errs = b.get("errors") or []
    check(len(errs) == 1 and errs[0].get("error", {}).get("code") ==
          "ERROR_VALIDATION_INVALID_KEY", "a streamed range with a bad key: its error", b)
    check(res[6].get("grpc_status") == OK, "the connection serves after them", res[6])
    check(conn.get("error") == "", "the connection stayed up", conn)
    finish(s)


# ---- ExecuteInteractive ------------------------------------------------------------------

def test_interactive():
    s = start("interactive")
    n = 10000
    # Each on its own connection, so one that stalls does not take the others.
    ops = [
        {"op": "interactive", "generate": {"n": n, "kind": "set", "collection": "ia"},
         "max_kept": 3},
        {"op": "interactive", "generate": {"n": n, "kind": "get", "collection": "ia"},
         "max_kept": 2, "via": "amaters"},
        {"op": "interactive", "queries": [
            q_set("ib", "other", "2", request_id="q0"),
            q_set("ib", b"\xff", "1", request_id="q1"),
            q_get("ib", "a", request_id="q2"),
            q_set("ib", "c", "1", compression=1, request_id="q3"),
            q_range("ib", "a", "z", request_id="q4"),
            q_del("ib", b"\xfe", request_id="q5"),
            q_get("ib", "a", request_id="q6")]},
        {"op": "interactive", "queries": [
            q_get("ib", "a", request_id="m0"), q_get("ib", b"\x80", request_id="m1"),
            q_get("ib", "a", request_id="m2")], "via": "amaters"},
        {"op": "interactive", "queries": []},
    ]
    # Queries of one stream may run at once (answered in order): what they
    # read is written before.
    r, _ = run(s, [q_set("ib", "a", "1")])
    check(affected(r[0]) == 1, "set a", r[0])
    res, conns = [], []
    for op in ops:
        r, c = run(s, [op, {"op": "health"}], timeout=120)
        res.append(r[0])
        conns.append(c)
        check(r[1].get("grpc_status") == OK, "the connection serves after it", (op["op"], r[1]))
    for i, what in ((0, "ExecuteInteractive"), (1, "/AmateRS/ExecuteStream")):
        r = res[i]
        check(r.get("grpc_status") == OK and r.get("nresponses") == n and r.get("ids_in_order")
              and r.get("nerrors") == 0,
              f"{what}: {n} pipelined queries answered in order, request_id echoed",
              {k: r.get(k) for k in ("grpc_status", "grpc_message", "nresponses",
                                     "ids_in_order", "nerrors", "error")})
    rs = res[0].get("responses") or [{}]
    check(affected({"grpc_status": OK, "response": rs[0]}) == 1, "the sets' answers", rs[:1])
    rs = res[1].get("responses") or [{}, {}]
    v = json.loads(single({"response": rs[1]}) or b"{}") if len(rs) > 1 else {}
    check(v.get("i") == 1, "the gets read the sets", rs[1:2])
    r = res[2]
    check(r.get("grpc_status") == OK and r.get("nresponses") == 7 and r.get("ids_in_order"),
          "errors inside an interactive stream do not end it", r)
    check(r.get("error_codes") == {"1": 6000, "3": 6001, "5": 6000} and r.get("nerrors") == 3,
          "the errors are the bad queries' (6000, 6001, 6000)", r.get("error_codes"))
    rs = r.get("responses") or []
    if len(rs) == 7:
        check(single({"response": rs[2]}) == b"1" and single({"response": rs[6]}) == b"1",
              "the queries after the errors answered", rs)
        check("a" in keys({"response": rs[4]}), "the range after the errors", rs[4])
    r = res[3]
    check(r.get("grpc_status") == OK and r.get("nresponses") == 3 and r.get("ids_in_order") and
          (r.get("error_codes") or {}) == {"1": 6000}, "AmateRS stream: an error in the middle",
          r)
    check(res[4].get("grpc_status") == OK and res[4].get("nresponses") == 0,
          "an interactive stream with no query", res[4])
    check(all(c.get("error") == "" for c in conns), "the connections stayed up", conns)
    finish(s)


# ---- deadlines ----------------------------------------------------------------------------

def test_timeout():
    """timeout_ms on a query the server is slow to run (a range runs on a
    worker, which --test-worker-delay-ms holds back; a get may be answered
    from the cache at once): ERROR_COMPUTE_TIMEOUT in the answer or
    DEADLINE_EXCEEDED; a generous one is answered; in an interactive stream
    the timeout does not end the stream."""
    s = start("timeout", ["--test-worker-delay-ms", "400"])
    rng = q_range("", "a", "z")
    res, _ = run(s, [
        q_set("", "k", "1", timeout_ms=10000),
        dict(rng, timeout_ms=1, request_id="t1"),
        {"op": "amaters_execute", "query": dict(rng, timeout_ms=1)},
        dict(rng, timeout_ms=5000),
        {"op": "batch", "timeout_ms": 1, "queries": [q_set("", "bt", "1")]},
        {"op": "interactive", "queries": [dict(rng, timeout_ms=1, request_id="i0"),
                                          dict(rng, request_id="i1")]},
        dict(rng, grpc_timeout="100m", timeout_ms=60000),
        q_get("", "bt"),
    ], timeout=60)

    def timed_out(r):
        return r.get("grpc_status") == DEADLINE_EXCEEDED or \
            (r.get("grpc_status") == OK and err_code(r) == "ERROR_COMPUTE_TIMEOUT")
    check(affected(res[0]) == 1, "set with a long timeout", res[0])
    check(timed_out(res[1]), "timeout_ms 1 on a slow path: a timeout", res[1])
    check(res[1].get("ms", 0) < 390, "answered before the server's 400 ms", res[1].get("ms"))
    check(resp(res[1]).get("request_id") in (None, "t1"), "the timeout echoes request_id",
          res[1])
    check(timed_out(res[2]), "timeout_ms 1 through /AmateRS/Execute", res[2])
    check(keys(res[3]) == ["k"], "timeout_ms 5000: answered", res[3])
    check(timed_out(res[4]), "a batch with timeout_ms 1", res[4])
    r = res[5]
    rs = r.get("responses") or []
    check(r.get("grpc_status") == OK and r.get("nresponses") == 2 and r.get("ids_in_order") and
          (r.get("error_codes") or {}) == {"0": 5002},
          "interactive: the timed out query gets ERROR_COMPUTE_TIMEOUT, the next one an answer",
          r)
    if len(rs) == 2:
        check("k" in keys({"response": rs[1]}), "the query after it answered", rs[1])
    check(timed_out(res[6]), "grpc-timeout 100m beats timeout_ms 60000", res[6])
    check(answered(res[7]) and single(res[7]) is None, "the timed out batch never applied",
          res[7])
    finish(s)


# ---- the database ----------------------------------------------------------------------

def test_nana_db():
    s = start("db")
    res, _ = run(s, [q_set("", "k", '"other"'), q_get("", "k")],
                 metadata=[["nana-db", "second.sqlite"]])
    check(affected(res[0]) == 1 and single(res[1]) == b'"other"',
          "set and get in the database nana-db names", res)
    res, _ = run(s, [q_get("", "k")])
    check(answered(res[0]) and single(res[0]) is None, "not in the default database", res[0])
    d = Driver(s)
    check(d.call("__getitem__", "k", db="second.sqlite") == "other",
          "the NanaSQLite door reads it in that database")
    d.close()
    finish(s)


# ---- set-up ---------------------------------------------------------------------------------

def setup():
    """Builds aql_h3_client (protoc + Go protobuf + quic-go, offline) into BUILD/interop."""
    global CLIENT
    out = os.path.join(os.path.abspath(ARGS.build_dir), "interop")
    b = subprocess.run(["sh", os.path.join(ROOT, "tests/interop/build-aql-client.sh"), out],
                       capture_output=True, text=True, timeout=600)
    if b.returncode != 0:
        print("  FAIL: building aql_h3_client\n" + b.stderr)
        return False
    CLIENT = os.path.join(out, "aql_h3_client")
    serverlib.ARGS = ARGS
    return os.path.exists(CLIENT)


def main():
    def extra(ap):
        ap.add_argument("--build-dir", required=True)
        ap.add_argument("--driver", required=True)

    def do_setup():
        global ARGS
        ARGS = serverlib.ARGS
        ARGS.driver = os.path.abspath(ARGS.driver)
        return setup()
    return serverlib.run_main(globals(), extra_args=extra, setup=do_setup)


if __name__ == "__main__":
    sys.exit(main())
