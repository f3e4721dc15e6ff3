#!/usr/bin/env python3
"""End-to-end tests of nanasqlite-server: the real binary on a loopback port,
driven over QUIC by wire_driver (one JSON command per line).

Each test starts its own server in a fresh directory with the flags it
needs, so limits can be set low enough to hit. Every wait is bounded.
Ends with "N passed, M failed"; exit status 1 if anything failed.
"""
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None


# ---- a tiny msgpack encoder for hostile frames -------------------------------

def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return b"\xdf" + struct.pack(">I", len(v)) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def frame(body):
    return (struct.pack(">I", len(body)) + body).hex()


def call_frame(method, args=(), kwargs=None):
    return frame(mp({"method": method, "args": list(args), "kwargs": kwargs or {}}))


# ---- the server and the driver -----------------------------------------------

class Driver:
    def __init__(self, server):
        self.server = server
        self.p = subprocess.Popen([ARGS.driver, os.path.join(server.dir, "cert.pem")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  cwd=server.dir)

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

    def connect(self, id="a"):
        return self.cmd(op="connect", id=id, port=self.server.port, ca="cert.pem")

    def auth(self, id="a", key="nana", **kw):
        r = self.cmd(op="auth", id=id, key=f"{key}_private.pem", **kw)
        return r.get("reply")

    def login(self, id="a", key="nana", **kw):
        r = self.connect(id)
        check(r.get("open"), f"connect {id}", r)
        return self.auth(id, key, **kw)

    def call(self, method, *args, id="a", **kw):
        c = {"op": "call", "id": id, "method": method, "args": list(args)}
        c.update(kw)
        return self.cmd(**c).get("reply")

    def raw(self, hexstr, id="a", **kw):
        return self.cmd(op="raw", id=id, hex=hexstr, **kw)

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def ok(reply):
    return isinstance(reply, dict) and reply.get("status") == "success"


def result(reply):
    return reply.get("result") if ok(reply) else ("ERR", reply)


def err(reply, etype=None, contains=None, code=None):
    if not isinstance(reply, dict) or reply.get("status") != "error":
        return False
    if etype and reply.get("error_type") != etype:
        return False
    if contains and contains not in reply.get("message", ""):
        return False
    if code and reply.get("code") != code:
        return False
    return True


# ---- tests ---------------------------------------------------------------------

def test_auth_flow():
    s = Server("auth", ["--challenge-ttl-ms", "300", "--ban-failures", "100"]).start()
    d = Driver(s)
    check(d.connect().get("open"), "connect")
    r = d.call("keys")
    check(r == {"status": "error", "message": "Unauthorized: Please start with AUTH_START"},
          "call before auth", r)
    r = d.raw(frame(mp({"method": "keys", "note": "type"})))["reply"]
    check(err(r) and "Unauthorized" in r["message"], "a call mentioning 'type' is no response", r)
    check(d.auth(corrupt=True) == "AUTH_FAILED", "bad signature fails")
    check(d.auth(no_start=True) == "AUTH_FAILED", "response without a challenge fails")
    check(d.auth(delay_ms=600) == "AUTH_FAILED", "expired challenge fails")
    check(d.auth() == "AUTH_OK", "good signature")
    r = d.cmd(op="raw", hex=frame(mp("AUTH_START")))["reply"]
    check(r == {"status": "error", "message": "Already authenticated"}, "AUTH_START again", r)
    check(ok(d.call("__setitem__", "hello", "world")), "set after auth")
    # A second connection must authenticate on its own.
    check(d.connect("b").get("open"), "second connection")
    r = d.call("__getitem__", "hello", id="b")
    check(err(r) and "Unauthorized" in r["message"], "second connection unauthenticated", r)
    check(d.auth("b") == "AUTH_OK", "second connection auth")
    check(result(d.call("__getitem__", "hello", id="b")) == "world", "shared data")
    d.close()
    check(s.stop() == 0, "server exits 0 on SIGTERM")
    log = s.log_text()
    check("auth failed" in log and "auth ok: account 'default'" in log, "auth results logged")
    check("open from 127.0.0.1" in log and "closed from" in log, "connections logged")
    with open(os.path.join(s.dir, "nana_private.pem")) as f:
        secret = f.read().split("\n")[1]
    check(secret not in log, "private key never logged")


def test_dict_and_batch():
    s = Server("dict").start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    c = d.call
    check(ok(c("__setitem__", "k1", {"a": [1, 2.5, None, True], "b": "あ"})), "set nested")
    check(result(c("__getitem__", "k1")) == {"a": [1, 2.5, None, True], "b": "あ"}, "get nested")
    check(result(c("__contains__", "k1")) is True, "contains")
    check(result(c("__contains__", "zz")) is False, "not contains")
    check(result(c("__len__")) == 1, "len")
    check(result(c("get", "zz")) is None, "get missing -> None")
    check(result(c("get", "zz", 7)) == 7, "get with default")
    check(result(c("setdefault", "k2", 5)) == 5, "setdefault stores")
    check(result(c("setdefault", "k2", 9)) == 5, "setdefault keeps")
    check(sorted(result(c("keys"))) == ["k1", "k2"], "keys")
    check(len(result(c("values"))) == 2, "values")
    check(["k2", 5] in result(c("items")), "items")
    check(result(c("to_dict"))["k2"] == 5, "to_dict")
    check(result(c("copy"))["k2"] == 5, "copy")
    check(result(c("pop", "k2")) == 5, "pop")
    check(result(c("pop", "k2", "dflt")) == "dflt", "pop default")
    check(err(c("pop", "k2"), "KeyError", "'k2'"), "pop missing")
    check(ok(c("update", {"u1": 1}, kwargs={"u2": 2})) if False else
          ok(d.cmd(op="call", method="update", args=[{"u1": 1}], kwargs={"u2": 2})["reply"]),
          "update mapping + kwargs")
    check(result(c("get", "u2")) == 2, "update kwargs stored")
    check(ok(c("batch_update", {"b1": 1, "b2": [2], "b3": {"x": 3}})), "batch_update")
    check(result(c("batch_get", ["b1", "b2", "nope"])) == {"b1": 1, "b2": [2]}, "batch_get")
    check(ok(c("batch_delete", ["b1", "b2", "nope"])), "batch_delete")
    check(result(c("batch_get", ["b1", "b2", "b3"])) == {"b3": {"x": 3}}, "after batch_delete")
    r = c("batch_update_partial", {"p1": 1, "p2": 2})
    check(result(r) == {}, "batch_update_partial", r)
    check(result(c("increment", "n")) == 1, "increment new")
    check(result(d.cmd(op="call", method="increment", args=["n"], kwargs={"amount": 5})["reply"]) == 6,
          "increment amount")
    check(err(c("increment", "k1"), "TypeError"), "increment non-number")
    check(result(c("patch", "b3", {"y": 4})) == {"x": 3, "y": 4}, "patch")
    check(result(c("get_by_path", "k1", "$.a[1]")) == 2.5, "get_by_path")
    check(ok(c("__delitem__", "k1")), "delitem")
    check(err(c("__delitem__", "k1"), "KeyError", "'k1'"), "delitem missing")
    k = c("popitem")
    check(ok(k) and isinstance(k["result"], list) and len(k["result"]) == 2, "popitem", k)
    # Another table of the same file.
    check(ok(c("__setitem__", "t", 1, table="other")), "set other table")
    check(result(c("keys", table="other")) == ["t"], "other table keys")
    check(err(c("keys", table="bad name"), "NanaSQLiteValidationError"), "bad table name")
    check(ok(c("clear")), "clear")
    check(result(c("__len__")) == 0, "len after clear")
    check(result(c("list_tables")) and "other" in result(c("list_tables")), "list_tables")
    check(result(c("table_exists", "other")) is True, "table_exists")
    check(isinstance(result(c("get_db_size")), int), "get_db_size")
    # Many calls in flight on one connection, replies matched by stream.
    r = d.cmd(op="calls", n=300, window=64, method="__getitem__", args=["t"], table="other")
    check(r.get("success") == 300, "300 pipelined gets", r)
    d.close()
    check(s.stop() == 0, "stop")


def test_errors_and_values():
    s = Server("errors").start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    c = d.call
    check(err(c("__getitem__", "no-such-key"), "KeyError", "'no-such-key'"), "KeyError repr")
    check(c("__getitem__", "it's")["message"] == "\"it's\"", "KeyError repr with quote")
    check(err(c("execute", "SELECT 1"), "PermissionError", "Method 'execute' is forbidden"),
          "execute forbidden")
    for m in ["vacuum", "pragma", "query", "count", "exists", "fetch_all", "fetch_one", "sql_insert",
              "begin_transaction", "commit", "close", "backup", "restore", "drop_table",
              "create_table", "load_all", "_secret", "__class__", "no_such_method"]:
        check(err(c(m), "PermissionError", "forbidden or invalid"), f"{m} refused")
    check(err(c("__getitem__"), "TypeError", "missing 1 required positional argument: 'key'"),
          "missing argument")
    check(err(c("__getitem__", "a", "b"), "TypeError", "takes 2 positional arguments"),
          "too many arguments")
    check(err(d.cmd(op="call", method="get", args=["a"], kwargs={"key": "b"})["reply"], "TypeError",
              "multiple values"), "argument twice")
    check(err(c("__getitem__", 5), "TypeError", "must be str"), "key of wrong type")
    check(err(c("batch_get", "notalist"), "TypeError"), "list expected")
    # Values JSON cannot hold: refused as Python would, nothing stored.
    r = d.raw(call_frame("__setitem__", ["b", b"\x00\x01"]))["reply"]
    check(err(r, "TypeError", "bytes"), "bin value refused", r)
    r = d.raw(call_frame("__setitem__", ["n", float("nan")]))["reply"]
    check(err(r, "ValueError", "Out of range float"), "NaN refused", r)
    r = d.raw(call_frame("__setitem__", ["m", {1: "x"}]))["reply"]
    check(err(r, "TypeError"), "non-string map key refused", r)
    check(err(c("__getitem__", "b"), "KeyError"), "nothing stored for refused values")
    big = 2 ** 62
    check(ok(c("__setitem__", "big", big)) and result(c("__getitem__", "big")) == big, "big int")
    check(ok(c("__setitem__", "f", 0.1)) and result(c("__getitem__", "f")) == 0.1, "float exact")
    deep = 1
    for _ in range(300):
        deep = [deep]
    r = d.raw(call_frame("__setitem__", ["deep", deep]))["reply"]
    check(err(r), "300-deep value refused", r)
    check(s.alive(), "server alive after bad values")
    d.close()
    s.stop()


def nested(depth, inner=None):
    """A value nested |depth| levels: lists around |inner| (default: an empty
    list, which counts as a level itself)."""
    v = [] if inner is None else inner
    for _ in range(depth - (1 if inner is None else 0)):
        v = [v]
    return v


def test_python_compat():
    """Where an unmodified client could tell this server from the Python
    NanaSQLite-Server: listing orders, popitem, get_fresh / is_cached /
    clear_cache, the wording of TypeErrors, and how deep values may nest."""
    s = Server("compat").start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    for k in ["b", "é", "10", "B", "9", "a"]:
        check(ok(d.call("__setitem__", k, 0)), f"set {k}")
    check(ok(d.call("__setitem__", "b", 1)), "an update")
    check(ok(d.call("__delitem__", "10")) and ok(d.call("__setitem__", "10", 2)), "a re-insert")
    by_key = ["10", "9", "B", "a", "b", "é"]  # byte order of the UTF-8 text
    by_insert = [["b", 1], ["é", 0], ["B", 0], ["9", 0], ["a", 0], ["10", 2]]

    def orders(when):
        c = d.call
        check(result(c("keys")) == by_key, f"keys() in key order ({when})", c("keys"))
        check(result(c("items")) == by_insert, f"items() in insertion order ({when})", c("items"))
        check(result(c("values")) == [v for _, v in by_insert], f"values() ({when})")
        for m in ("to_dict", "copy"):
            r = result(c(m))
            check(isinstance(r, dict) and [list(x) for x in r.items()] == by_insert,
                  f"{m}() in insertion order ({when})", r)

    orders("as written")
    for k in by_key:
        d.call("__getitem__", k)
    orders("all cached")
    # The same from the file alone, after a restart.
    d.close()
    check(s.stop() == 0, "stop")
    s.start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login after restart")
    c = d.call
    orders("after a restart")
    check(result(c("popitem")) == ["10", 2], "popitem() takes the first key in key order")
    check(result(c("popitem")) == ["9", 0], "popitem() again")
    check(result(c("keys")) == by_key[2:], "popitem() removed them")

    # is_cached, clear_cache, get_fresh
    check(result(c("is_cached", "zz")) is False, "is_cached: absent key")
    check(result(c("__getitem__", "a")) == 0 and result(c("is_cached", "a")) is True,
          "is_cached after a read")
    r = c("clear_cache")
    check(ok(r) and r["result"] is None, "clear_cache returns None", r)
    check(result(c("is_cached", "a")) is False, "is_cached after clear_cache")
    check(result(c("__getitem__", "a")) == 0, "data intact after clear_cache")
    check(result(c("get_fresh", "zz")) is None and result(c("get_fresh", "zz", 5)) == 5,
          "get_fresh default")
    # Another program changes the file: get answers from the cache,
    # get_fresh from the file, and get follows it afterwards.
    check(ok(c("__setitem__", "x", "old")) and result(c("get", "x")) == "old", "x cached")
    import sqlite3
    db = sqlite3.connect(os.path.join(s.dir, "server_db.sqlite"), timeout=10)
    db.execute("UPDATE data SET value = ? WHERE key = ?", ('"new"', "x"))
    db.commit()
    db.close()
    check(result(c("get", "x")) == "old", "get still answers from the cache")
    check(result(c("get_fresh", "x")) == "new", "get_fresh reads the file")
    check(result(c("get", "x")) == "new", "get_fresh refreshed the cache")
    check(err(d.cmd(op="call", method="get_fresh", args=["x"], kwargs={"bogus": 1})["reply"],
              "TypeError", "NanaSQLite.get_fresh() got an unexpected keyword argument 'bogus'"),
          "get_fresh binds like Python")

    # TypeErrors word for word as CPython words them for bound methods.
    words = [
        (("get", ["a", 1, 2]), "NanaSQLite.get() takes from 2 to 3 positional arguments but 4 "
                               "were given"),
        (("keys", [1]), "NanaSQLite.keys() takes 1 positional argument but 2 were given"),
        (("popitem", [1]), "MutableMapping.popitem() takes 1 positional argument but 2 were given"),
        (("__setitem__", []), "NanaSQLite.__setitem__() missing 2 required positional "
                              "arguments: 'key' and 'value'"),
        (("is_cached", []), "NanaSQLite.is_cached() missing 1 required positional argument: "
                            "'key'"),
        (("clear_cache", [1]), "NanaSQLite.clear_cache() takes 1 positional argument but 2 "
                               "were given"),
    ]
    for (m, args), want in words:
        r = c(m, *args)
        check(err(r, "TypeError") and r["message"] == want, f"TypeError of {m}{tuple(args)}", r)
    r = d.cmd(op="call", method="pop", args=["zz"], kwargs={"default": 1})["reply"]
    check(err(r, "TypeError") and r["message"] ==
          "NanaSQLite.pop() got an unexpected keyword argument 'default'", "pop(default=)", r)
    check(result(c("pop", "zz", 1, 2)) == 1, "pop(key, *args)")

    # Values nest up to 128 levels over the wire, refused at 129 naming the limit,
    # whether __setitem__ is queued straight from the network thread (two
    # positional arguments) or bound by a worker (the value as a keyword).
    def set_deep(key, depth, how):
        if how == "fast":
            return d.raw(call_frame("__setitem__", [key, nested(depth)]))["reply"]
        return d.raw(call_frame("__setitem__", [key], {"value": nested(depth)}))["reply"]

    for depth in (64, 127, 128):
        for how in ("fast", "worker"):
            r = set_deep("deep", depth, how)
            check(ok(r), f"{depth}-deep value stored ({how})", r)
            check(result(c("__getitem__", "deep")) == nested(depth),
                  f"{depth}-deep value read back ({how})")
            check(ok(c("__delitem__", "deep")), "delete it")
    for how in ("fast", "worker"):
        r = set_deep("deep2", 129, how)
        check(err(r, "ValueError") and r["message"] == "nested deeper than 128 levels",
              f"129-deep value refused ({how})", r)
    check(err(c("__getitem__", "deep2"), "KeyError"), "nothing stored for it")
    r = d.raw(call_frame("batch_update", [{"m1": nested(128), "m2": 1}]))["reply"]
    check(ok(r) and result(c("get", "m1")) == nested(128), "128-deep value of a mapping", r)
    r = d.raw(call_frame("batch_update", [{"m3": nested(129)}]))["reply"]
    check(err(r, "ValueError", "a value may nest at most 128"), "129-deep value of a mapping", r)
    r = d.raw(call_frame("update", [], {"k": nested(128)}))["reply"]
    check(ok(r), "128-deep keyword value of update", r)
    check(s.alive(), "server alive")
    d.close()
    check(s.stop() == 0, "stop")


def test_malformed_frames():
    s = Server("frames", ["--max-request-bytes", "4096"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    cases = {
        "empty stream": "",
        "short length": "0000",
        "truncated": "0000001083a1",
        "oversize length": "ffffffff",
        "over the limit": "00002000" + "00" * 16,
        "not msgpack": "00000003c1c1c1",
        "bytes after the frame": "00000001c0" + "c0c0",
        "msgpack array": frame(mp([1, 2])),
        "msgpack int": frame(mp(7)),
        "map without method": frame(mp({"args": []})),
        "method not a string": frame(mp({"method": 5})),
        "args not a list": frame(mp({"method": "keys", "args": 5})),
        "kwargs not a map": frame(mp({"method": "keys", "kwargs": [1]})),
        "non-string keys": frame(b"\x81\x01\x02"),
        "deep nesting": frame(b"\x91" * 400 + b"\xc0"),
        "zero-length frame": "00000000",
        "count lies": frame(b"\xdd\xff\xff\xff\xff"),
    }
    for name, hx in cases.items():
        r = d.raw(hx)
        rep = r.get("reply")
        check((err(rep) and rep.get("error_type") in ("ValueError", "TypeError")) or "reset" in r,
              f"malformed: {name}", r)
    check(result(d.call("__len__")) is not None and ok(d.call("__len__")),
          "same connection still served")
    check(d.login("b") == "AUTH_OK" and ok(d.call("__len__", id="b")), "others still served")
    # A frame split across sends is put back together.
    body = bytes.fromhex(call_frame("__setitem__", ["split", "yes"]))
    r = d.cmd(op="raw", hex=body[:3].hex(), fin=False, wait=False)
    r = d.cmd(op="more", sid=r["sid"], hex=body[3:].hex(), fin=True)
    check(ok(r.get("reply")), "frame in pieces", r)
    check(result(d.call("__getitem__", "split")) == "yes", "split frame stored")
    check(s.alive(), "server alive")
    d.close()
    s.stop()


def test_rbac_and_live_edit():
    keys = ("admin", "reader", "limited", "tables", "blocked", "nobody")
    accounts = [
        {"name": "admin", "allowed_methods": ["__getitem__", "__setitem__", "keys", "vacuum",
                                              "count", "query", "commit", "backup"]},
        {"name": "reader", "read_only": True},
        {"name": "limited", "allowed_dbs": ["server_db.sqlite", "a.db"],
         "forbidden_methods": ["clear"]},
        {"name": "tables", "allowed_dbs": {"server_db.sqlite": ["data"], "b.db": None}},
        {"name": "blocked", "blocked_ips": ["127.0.0.0/8"]},
    ]
    s = Server("rbac", ["--ban-failures", "100"], accounts=accounts, keys=keys).start()
    d = Driver(s)
    check(d.login("adm", "admin", account="admin") == "AUTH_OK", "admin login")
    check(ok(d.call("__setitem__", "x", 1, id="adm")), "admin set")
    check(ok(d.call("vacuum", id="adm")), "admin granted vacuum")
    check(result(d.call("count", id="adm")) == 1, "admin granted count (caller SQL)")
    r = d.call("query", id="adm", kwargs={"where": "key = ?", "parameters": ["x"]})
    check(ok(r) and len(r["result"]) == 1, "admin query with bound params", r)
    r = d.call("query", id="adm", kwargs={"where": "1=1; DROP TABLE data"})
    check(err(r, "NanaSQLiteValidationError"), "hostile SQL fragment refused", r)
    check(err(d.call("__len__", id="adm"), "PermissionError"), "admin: unlisted method refused")
    check(ok(d.call("backup", "snap.db", id="adm")), "backup into the backups directory")
    check(os.path.exists(os.path.join(s.dir, "backups", "snap.db")), "backup file written")
    for dest in ["../key.pem", "key.pem/../../x", "/tmp/x.db"]:
        r = d.call("backup", dest, id="adm")
        check(err(r) and r["error_type"] in ("PermissionError", "NanaSQLiteValidationError"),
              f"backup to {dest} refused", r)
    check(err(d.call("commit", id="adm"), "NanaSQLiteError", "not available"),
          "granted but not available over the network")
    check(d.login("rd", "reader") == "AUTH_OK", "reader login without account name")
    check(result(d.call("__getitem__", "x", id="rd")) == 1, "reader reads")
    check(err(d.call("__setitem__", "y", 2, id="rd"), "PermissionError", "read-only"),
          "reader cannot write")
    check(err(d.call("clear", id="rd"), "PermissionError"), "reader cannot clear")
    check(err(d.call("keys", id="rd", table="fresh")), "reader cannot create a table by reading")
    check(result(d.call("table_exists", "fresh", id="rd")) is False, "no table was created")
    check(d.login("lim", "limited", account="limited") == "AUTH_OK", "limited login")
    check(ok(d.call("__setitem__", "a", 1, id="lim", db="a.db")), "limited: allowed db")
    check(err(d.call("keys", id="lim", db="c.db"), "PermissionError", "not allowed"),
          "limited: other db refused")
    check(err(d.call("clear", id="lim"), "PermissionError"), "limited: forbidden method")
    check(d.login("tab", "tables", account="tables") == "AUTH_OK", "tables login")
    check(ok(d.call("keys", id="tab")), "tables: allowed table")
    check(err(d.call("keys", id="tab", table="other"), "PermissionError", "Table 'other'"),
          "tables: other table refused")
    check(result(d.call("table_exists", "other", id="rd")) is False, "refused table not created")
    check(ok(d.call("__setitem__", "z", 1, id="tab", db="b.db", table="any")),
          "tables: every table of b.db")
    check(d.login("blk", "blocked", account="blocked") == "AUTH_FAILED", "blocked IP refused")
    check(d.login("nob", "nobody") == "AUTH_FAILED", "unknown key refused")
    check(d.login("wrong", "reader", account="admin") == "AUTH_FAILED", "key of another account")
    # Live edit: the reader loses its account, nobody gains one.
    s.write_accounts([a for a in accounts if a["name"] != "reader"] + [{"name": "nobody"}])
    deadline = time.time() + 10
    r = None
    while time.time() < deadline:
        r = d.call("__getitem__", "x", id="rd")
        if err(r, "PermissionError"):
            break
        time.sleep(0.1)
    check(err(r, "PermissionError", "no longer valid"), "removed account refused on next call", r)
    check(d.login("nob2", "nobody") == "AUTH_OK", "added account logs in without restart")
    check(ok(d.call("__getitem__", "x", id="adm")), "admin session unaffected")
    # A broken edit keeps the last good accounts.
    with open(os.path.join(s.dir, "accounts.json"), "w") as f:
        f.write("{ this is not json")
    time.sleep(0.5)
    check(d.login("nob3", "nobody") == "AUTH_OK", "broken edit keeps the last good accounts")
    check("not reloaded" in s.log_text(), "broken edit logged")
    d.close()
    s.stop()


def test_paths():
    s = Server("paths").start()
    os.makedirs(os.path.join(s.dir, "sub"))
    outside = os.path.join(ARGS.tmp, f"outside-{os.getpid()}.db")
    open(outside, "w").close()
    os.symlink(outside, os.path.join(s.dir, "evil.db"))
    os.symlink("server_db.sqlite", os.path.join(s.dir, "alias.db"))
    os.symlink("kept.db", os.path.join(s.dir, "kept-link.db"))
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    for name in ["../x.db", "/etc/passwd", "..", ".hidden", "sub/x.db", "a\\b", "", "x" * 200,
                 "evil.db", "sub"]:
        r = d.call("keys", db=name)
        check(err(r, "PermissionError"), f"db name {name!r} refused", r)
    r = d.call("__setitem__", "via", "alias", db="alias.db")
    check(err(r, "PermissionError", "another name of the default database"),
          "a link to the default database is refused (it would bypass allowed_dbs)", r)
    check(ok(d.call("__setitem__", "via", "link", db="kept.db")), "a named database")
    check(result(d.call("__getitem__", "via", db="kept-link.db")) == "link",
          "a link inside the dir shares the named database's store")
    check(os.path.getsize(outside) == 0, "nothing written outside")
    os.unlink(outside)
    d.close()
    s.stop()


def test_limits():
    # Connections.
    # Connections: logged-in ones hold their places; a newcomer is refused.
    s = Server("conns", ["--max-connections", "2"]).start()
    d = Driver(s)
    check(d.login("a") == "AUTH_OK" and d.login("b") == "AUTH_OK", "two connections")
    r = d.connect("c")
    check(not r.get("open"), "third connection refused", r)
    check(r.get("close_reason") == "server full", "the refusal says the server is full", r)
    d.close()
    s.stop()
    # Connections not logged in never keep a newcomer out: the oldest makes room.
    s = Server("conns-unauth", ["--max-connections", "2"]).start()
    d = Driver(s)
    check(d.connect("a").get("open") and d.connect("b").get("open"), "two connections")
    check(d.login("c") == "AUTH_OK", "a third client logs in", s.dir)
    check((d.call("__len__", id="c") or {}).get("status") == "success", "and is served")
    d.close()
    s.stop()
    # Unfinished requests before authentication, and bytes per connection.
    s = Server("preauth", ["--max-preauth-streams", "3", "--max-conn-bytes", "3000",
                           "--max-request-bytes", "2048"]).start()
    d = Driver(s)
    check(d.connect().get("open"), "connect")
    sids = [d.cmd(op="raw", hex="00000064" + "00" * 10, fin=False, wait=False)["sid"]
            for _ in range(4)]
    r = d.cmd(op="wait", sid=sids[3])
    check(err(r.get("reply"), contains="before authentication"), "4th unfinished stream refused", r)
    check(d.login("b") == "AUTH_OK", "login b")
    sids = [d.cmd(op="raw", id="b", hex="000007d0" + "00" * 1200, fin=False, wait=False)["sid"]
            for _ in range(3)]
    r = d.cmd(op="wait", id="b", sid=sids[2])
    check(err(r.get("reply"), contains="Connection buffer limit"), "connection byte limit", r)
    r = d.raw(frame(mp({"method": "__setitem__", "args": ["big", "x" * 3000], "kwargs": {}})),
              id="b")
    check(err(r.get("reply"), contains="exceeds the limit"), "request byte limit", r)
    check(s.alive(), "alive")
    d.close()
    s.stop()
    # Rate per account.
    s = Server("rate", ["--rate-limit", "20"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    r = d.cmd(op="calls", n=100, window=50, method="__len__")
    check(r.get("errors", 0) > 0 and "rate_limited" in r.get("last_error", ""), "rate limited", r)
    check(r.get("success", 0) >= 15, "calls within the rate pass", r)
    d.close()
    s.stop()
    # Deadline: the caller gets a timeout, and queued work is cancelled.
    s = Server("deadline", ["--workers", "1", "--call-timeout-ms", "300",
                            "--test-worker-delay-ms", "700"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    sids = [d.cmd(op="call", method="update", args=[{f"q{i}": i}], wait=False)["sid"]
            for i in range(4)]
    reps = [d.cmd(op="wait", sid=x)["reply"] for x in sids]
    check(all(err(x, "RuntimeError", code="timeout") for x in reps), "calls timed out", reps)
    time.sleep(1.0)
    d.close()
    s.stop()
    s.flags = []
    s.start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login after restart")
    r = d.call("batch_get", ["q1", "q2", "q3"])
    check(result(r) == {}, "queued calls were cancelled, not run", r)
    d.close()
    s.stop()
    # Queue limit: overload answers busy.
    s = Server("queue", ["--workers", "1", "--queue-limit", "2",
                         "--test-worker-delay-ms", "200"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    r = d.cmd(op="calls", n=10, window=10, method="keys")
    check(r.get("errors", 0) > 0 and "busy" in r.get("last_error", ""), "busy answered", r)
    d.close()
    s.stop()
    # Databases open at once.
    s = Server("maxdbs", ["--max-dbs", "2"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    check(ok(d.call("keys", db="one.db")), "second database opens")
    r = d.call("keys", db="two.db")
    check(err(r, code="busy") and "too many databases" in r["message"], "database limit", r)
    d.close()
    s.stop()



def test_login_limits():
    """Before login: a small frame limit, a deadline, and caps that never keep a
    client that logs in out."""
    s = Server("prelogin", ["--auth-timeout-ms", "600", "--max-preauth-request-bytes", "512",
                            "--max-conns-per-addr", "3"]).start()
    d = Driver(s)
    check(d.connect().get("open"), "connect")
    r = d.raw(frame(mp({"type": "response", "data": b"x" * 600})))
    check(err(r.get("reply"), "ValueError", contains="before authentication"),
          "a large frame before login is refused", r)
    r = d.cmd(op="raw", hex="00100000" + "00" * 100, fin=False, wait=True)
    check(err(r.get("reply"), contains="before authentication"),
          "a large split frame before login is refused at its length", r)
    time.sleep(1.0)
    r = d.cmd(op="raw", hex=frame(mp("AUTH_START")))
    check(not r.get("ok") or r.get("closed") is not None, "not logged in in time: closed", r)
    check(d.login("b") == "AUTH_OK", "a client that logs in at once is served")
    time.sleep(1.0)
    check(ok(d.call("__len__", id="b")), "and stays, past the deadline")
    # Three not logged in from this address, then one that logs in: it gets in.
    for i in range(3):
        d.connect(f"idle{i}")
    check(d.login("c") == "AUTH_OK", "the fourth logs in: the oldest idle one made room")
    check(ok(d.call("__len__", id="c")), "and is served")
    check("not logged in" not in s.log_text() or s.alive(), "alive")
    d.close()
    s.stop()


def test_request_deadlines_and_budget():
    s = Server("reqlimits", ["--request-idle-ms", "400", "--request-timeout-ms", "1500",
                             "--max-buffered-bytes", "300000"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    # A length prefix, then silence: answered at the idle deadline.
    t0 = time.time()
    r = d.cmd(op="raw", hex="00001000" + "00" * 10, fin=False, wait=True)
    took = time.time() - t0
    check(err(r.get("reply"), "ValueError", contains="timed out"), "idle request refused", r)
    check(0.3 < took < 5, "at its idle deadline", took)
    # Bytes that keep coming, too slowly: answered at the total deadline.
    sid = d.cmd(op="raw", hex="00001000" + "00" * 10, fin=False, wait=False)["sid"]
    for _ in range(6):
        time.sleep(0.3)
        d.cmd(op="more", sid=sid, hex="00" * 10, fin=False, wait=False)
    r = d.cmd(op="wait", sid=sid)
    check(err(r.get("reply"), contains="not whole within"), "slow request refused", r)
    # The server-wide budget: large unfinished requests fill it; another large one
    # is refused as busy while a small call goes on.
    check(d.login("b") == "AUTH_OK", "login b")
    d.cmd(op="raw", id="b", hex="00020000" + "00" * 100, fin=False, wait=False)
    d.cmd(op="raw", id="b", hex="00020000" + "00" * 100, fin=False, wait=False)
    r = d.cmd(op="raw", id="b", hex="00020000" + "00" * 100, fin=False, wait=True)
    check(err(r.get("reply"), "RuntimeError", contains="request buffer budget"),
          "a large request past the budget is refused", r)
    check(ok(d.call("__len__")), "a small call goes on")
    check(s.alive(), "alive")
    d.close()
    s.stop()


def test_connection_database():
    """A call that names no database uses the one the connection named last
    (as the Python server does); "db": nil names the default."""
    s = Server("stickydb").start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    check(ok(d.call("__setitem__", "k", "default")), "set in the default database")
    check(ok(d.call("__setitem__", "k", "other", db="other.db")), "set in other.db")
    check(result(d.call("__getitem__", "k")) == "other", "no db: the one named last")
    r = d.raw(frame(mp({"method": "__getitem__", "args": ["k"], "kwargs": {}, "db": None})))
    check(result(r.get("reply")) == "default", "db nil: the default database", r)
    check(result(d.call("__getitem__", "k")) == "default", "and it is remembered", r)
    check(d.login("b") == "AUTH_OK", "login b")
    check(result(d.call("__getitem__", "k", id="b")) == "default", "per connection")
    d.close()
    s.stop()

def test_bans():
    s = Server("bans", ["--ban-failures", "2", "--ban-seconds", "2"]).start()
    d = Driver(s)
    check(d.connect().get("open"), "connect")
    check(d.auth(corrupt=True) == "AUTH_FAILED", "first failure")
    check(d.auth(corrupt=True) == "AUTH_BANNED", "second failure bans")
    check(d.auth() == "AUTH_BANNED", "banned even with the right key")
    r = d.connect("b")
    check(not r.get("open"), "banned address refused at the handshake", r)
    check(r.get("close_reason") == "banned", "the refusal says the address is banned", r)
    time.sleep(2.5)
    check(d.login("c") == "AUTH_OK", "ban expires")
    check("banned for 2 s" in s.log_text(), "ban logged")
    d.close()
    s.stop()
    s = Server("nobans", ["--no-bans"]).start()
    d = Driver(s)
    d.connect()
    for _ in range(5):
        d.auth(corrupt=True)
    check(d.login("b") == "AUTH_OK", "--no-bans never bans")
    d.close()
    s.stop()


def test_shutdown_keeps_acknowledged_writes():
    s = Server("shutdown", ["--workers", "2", "--test-worker-delay-ms", "100"]).start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login")
    sids = {}
    for i in range(12):
        sids[f"w{i}"] = d.cmd(op="call", method="update", args=[{f"w{i}": i}], wait=False)["sid"]
    # "Sent" means handed to the client's I/O thread: give the calls time to
    # reach the server (12 x 100 ms on 2 workers keeps most of them queued),
    # or the last ones are refused as arriving after the stop, correctly.
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    replies = {k: d.cmd(op="wait", sid=sid)["reply"] for k, sid in sids.items()}
    acked = [k for k, r in replies.items() if ok(r)]
    rc = s.proc.wait(timeout=30)
    s.log.close()
    check("Sanitizer" not in s.log_text(), "no sanitizer report", s.dir)
    d.close()
    check(rc == 0, "graceful stop exits 0", rc)
    check(len(acked) == 12, "calls in flight were finished", replies)
    s.start()
    d = Driver(s)
    check(d.login() == "AUTH_OK", "login after restart")
    got = result(d.call("batch_get", acked))
    check(isinstance(got, dict) and sorted(got) == sorted(acked), "every acknowledged write kept",
          got)
    d.close()
    s.stop()


def test_command_line():
    s = Server("cli")
    os.unlink(os.path.join(s.dir, "cert.pem"))
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--port", "0"],
                       cwd=s.dir, capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "cert.pem" in p.stderr and p.stderr.count("\n") == 1,
          "missing certificate named in one line", p.stderr)
    s.run_tool("nanasqlite-cert-gen", "--force")
    os.unlink(os.path.join(s.dir, "nana_public.pub"))
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--port", "0"],
                       cwd=s.dir, capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "nana_public.pub" in p.stderr, "missing public key named",
          p.stderr)
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--help"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and "--synchronous" in p.stdout, "--help")
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--version"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and p.stdout.startswith("nanasqlite-server "), "--version")
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--bogus"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2, "unknown flag exits 2")
    p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--synchronous", "x"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2, "bad --synchronous exits 2")
    # --synchronous full serves like normal.
    s.run_tool("nanasqlite-key-gen", "--force")
    s.flags = ["--synchronous", "full"]
    s.start()
    d = Driver(s)
    check(d.login() == "AUTH_OK" and ok(d.call("__setitem__", "s", 1)), "synchronous full")
    d.close()
    check(s.stop(signal.SIGINT) == 0, "SIGINT stops with 0")


def server_run(*args, cwd=None):
    """Runs nanasqlite-server with |args| to completion (bad flags end it at once)."""
    return subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-server"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def test_flag_errors():
    """A bad command line: exactly one line naming the problem and what is allowed, exit 2,
    nothing created."""
    d = os.path.join(ARGS.tmp, f"e2e-flags-{os.getpid()}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cases = [
        (["--port", "abc"], 'nanasqlite-server: --port: "abc" is not a number (0..65535)'),
        (["--port", "70000"], "nanasqlite-server: --port: 70000 is out of range (0..65535)"),
        (["--port=70000"], "nanasqlite-server: --port: 70000 is out of range (0..65535)"),
        (["--port", "-1"], 'nanasqlite-server: --port: "-1" is not a number (0..65535)'),
        (["--threads", "0"], "nanasqlite-server: --threads: 0 is out of range (1..64)"),
        (["--workers", "257"], "nanasqlite-server: --workers: 257 is out of range (1..256)"),
        (["--rate-limit", "0.5"],
         "nanasqlite-server: --rate-limit: 0.5 is out of range (1..1000000000)"),
        (["--max-request-bytes", "10MB"],
         'nanasqlite-server: --max-request-bytes: "10MB" is not a number (64..2147483648)'),
        (["--bogus"], "nanasqlite-server: unknown option --bogus"),
        (["--port", "4433", "--bogus"], "nanasqlite-server: unknown option --bogus"),
        (["--bogus=1"], "nanasqlite-server: unknown option --bogus"),
        (["--port"], "nanasqlite-server: --port needs a value"),
        (["--db", ""], "nanasqlite-server: --db: the value is empty"),
        (["--no-bans=yes"], "nanasqlite-server: --no-bans takes no value"),
        (["--synchronous", "x"],
         'nanasqlite-server: --synchronous: "x" is not one of normal or full'),
        (["--log-level", "loud"],
         'nanasqlite-server: --log-level: "loud" is not one of error, warn, info or debug'),
        (["serve"], 'nanasqlite-server: unexpected argument "serve" (options start with --)'),
    ]
    for args, want in cases:
        p = server_run(*args, cwd=d)
        check(p.returncode == 2 and p.stderr == want + "\n" and p.stdout == "",
              f"{args}: exit 2 and {want!r}", (p.returncode, p.stderr))
    check(os.listdir(d) == [], "a bad command line creates nothing", os.listdir(d))
    p = server_run("--version")
    check(p.returncode == 0 and re.fullmatch(r"nanasqlite-server \d+\.\d+\.\d+\n", p.stdout),
          "--version", p.stdout)
    p = server_run("--help")
    check(p.returncode == 0 and "--max-connections N" in p.stdout and "(1..64) [1]" in p.stdout
          and "--test-worker-delay-ms" not in p.stdout, "--help from the table", p.stdout[:300])
    p = server_run("--help-markdown")
    check(p.returncode == 0 and "| `--port` | `[network] bind_address`, its port | 0..65535 | "
          "`4433` |" in p.stdout, "--help-markdown", p.stdout[:300])


def test_ready_file():
    """--ready-file: --name=value works; a missing folder fails the start before anything is
    made, naming the path; the file appears once serving and is gone after a graceful stop."""
    s = Server("ready")
    p = server_run("--port=0", "--ready-file=no/such/dir/port.txt", cwd=s.dir)
    check(p.returncode == 1 and p.stderr.count("\n") == 1 and "no/such/dir/port.txt" in p.stderr
          and "does not exist" in p.stderr, "missing folder: exit 1, path named", p.stderr)
    check(not os.path.exists(os.path.join(s.dir, "server_db.sqlite")),
          "nothing created before the ready-file check", os.listdir(s.dir))
    os.makedirs(os.path.join(s.dir, "run"))
    s.start(extra=["--db=main.sqlite"])
    check(os.path.exists(os.path.join(s.dir, "main.sqlite")), "--db=value used")
    s.stop()
    check(not os.path.exists(os.path.join(s.dir, "port.txt")), "ready file removed at stop")
    proc = subprocess.Popen([os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--port=0",
                             "--ready-file=run/port.txt"], cwd=s.dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = os.path.join(s.dir, "run", "port.txt")
    port = None
    deadline = time.time() + 20
    while time.time() < deadline and proc.poll() is None and port is None:
        if os.path.exists(ready):
            port = open(ready).read().strip()
        time.sleep(0.02)
    check(port is not None and port.isdigit() and int(port) > 0, "ready file holds the port",
          port)
    check(os.listdir(os.path.join(s.dir, "run")) == ["port.txt"], "no temporary file left")
    proc.send_signal(signal.SIGINT)
    check(proc.wait(timeout=30) == 0, "SIGINT stops it with 0")
    check(not os.path.exists(ready), "ready file removed after SIGINT")


def main():
    return serverlib.run_main(globals(), driver=True)


if __name__ == "__main__":
    sys.exit(main())
