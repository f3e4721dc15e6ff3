#!/usr/bin/env python3
"""End-to-end tests of the AQL clients against the real server's gRPC door:
`nanasqlite-cli aql ...` (one JSON document per command, exit statuses) and
the Python package's AqlClient / AsyncAqlClient over libnanasqlite-client,
including a 20,000-row range read through the stream iterator, streams
closed early (the connection must keep serving), and the NanaSQLite door
seeing what AQL wrote.

Each test starts its own server in a fresh directory. Every wait is bounded.
Ends with "N passed, M failed"; exit status 1 if anything failed.
Usage: test_aql_clients.py --bin-dir DIR --lib LIBNANASQLITE_CLIENT.so [--tmp DIR] [test...]
"""
import asyncio
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import serverlib  # noqa: E402
from serverlib import Server, check  # noqa: E402

ARGS = None
TIMEOUT = 60  # seconds for any one CLI run
aql = None  # nanasqlite_server.aql, imported in setup()
errors = None


def cli(s, *args, input=None):
    """Runs nanasqlite-cli against |s|; (exit status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANASQLITE_")}
    try:
        p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--port", str(s.port),
                            *args], cwd=s.dir, env=env, input=input, capture_output=True,
                           text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "timed out"
    return p.returncode, p.stdout, p.stderr


def cli_ok(s, what, *args, input=None):
    """A CLI run that must succeed with one JSON document on one line; returns it."""
    rc, out, err = cli(s, *args, input=input)
    lines = out.split("\n")
    good = rc == 0 and len(lines) == 2 and lines[1] == "" and err == ""
    check(good, what, f"rc={rc} out={out[:300]!r} err={err!r}")
    try:
        return json.loads(out) if good else None
    except ValueError:
        check(False, what + ": stdout is JSON", out[:300])
        return None


def client(s, **kw):
    return aql.AqlClient(port=s.port, ca_cert_path=os.path.join(s.dir, "cert.pem"),
                         private_key_path=os.path.join(s.dir, "nana_private.pem"), **kw)


def test_cli_queries():
    s = Server("aql-cli").start()
    try:
        d = cli_ok(s, "set JSON", "aql", "set", "u1", '{"age": 31, "city": "Tokyo"}')
        check(d == {"affected": 1}, "set answers affected 1", d)
        cli_ok(s, "set second", "aql", "set", "u2", '{"age": 25, "city": "Kyoto"}')
        d = cli_ok(s, "set bytes", "aql", "set", "b1", "not json at all")
        d = cli_ok(s, "get JSON", "aql", "get", "u1")
        check(d == {"value": {"age": 31, "city": "Tokyo"}}, "get prints the JSON value", d)
        d = cli_ok(s, "get bytes", "aql", "get", "b1")
        check(d == {"value": {"$bytes": "bm90IGpzb24gYXQgYWxs"}}, "bytes print as $bytes", d)
        d = cli_ok(s, "get --raw-values", "aql", "get", "u2", "--raw-values")
        check(isinstance(d["value"], dict) and "$bytes" in d["value"], "--raw-values", d)
        d = cli_ok(s, "set --base64", "aql", "set", "--base64", "b2", "/wA=")
        d = cli_ok(s, "get base64 bytes", "aql", "get", "b2")
        check(d == {"value": {"$bytes": "/wA="}}, "--base64 stores the bytes", d)
        d = cli_ok(s, "get missing", "aql", "get", "nope")
        check(d == {"value": None, "found": False}, "a missing key", d)
        d = cli_ok(s, "range", "aql", "range", "u", "v")
        check(d and d["count"] == 2 and [r["key"] for r in d["rows"]] == ["u1", "u2"], "range", d)
        d = cli_ok(s, "range --limit", "aql", "range", "a", "z", "--limit", "1")
        check(d and d["count"] == 1 and d["rows"][0]["key"] == "b1", "range --limit 1", d)
        d = cli_ok(s, "filter", "aql", "filter", 'age >= 30 and city = "Tokyo"')
        check(d and [r["key"] for r in d["rows"]] == ["u1"], "filter", d)
        d = cli_ok(s, "filter --where --stream", "aql", "filter", "--where", "age > 0",
                   "--stream")
        check(d and d["count"] == 2, "filter --stream", d)
        d = cli_ok(s, "update", "aql", "update", "--where", "age >= 30", "--set",
                   'status="senior"', "--add", "visits=1")
        check(d == {"affected": 1}, "update answers affected", d)
        d = cli_ok(s, "get updated", "aql", "get", "u1")
        check(d and d["value"].get("status") == "senior" and d["value"].get("visits") == 1,
              "update changed the value", d)
        d = cli_ok(s, "collection", "aql", "set", "--collection", "other", "k", "1")
        d = cli_ok(s, "get other collection", "aql", "--collection", "other", "get", "k")
        check(d == {"value": 1}, "--collection", d)
        d = cli_ok(s, "delete", "aql", "delete", "u2")
        check(d == {"affected": 1}, "delete existing", d)
        d = cli_ok(s, "delete again", "aql", "delete", "u2")
        check(d == {"affected": 0}, "delete missing", d)
        # batch from stdin (JSON lines, blank lines skipped) and from arguments
        lines = "\n".join([json.dumps({"op": "set", "key": "j1", "value": {"n": 1}}),
                           "",
                           json.dumps({"op": "get", "key": "j1"}),
                           json.dumps({"op": "range", "start": "j", "end": "k"}),
                           json.dumps({"op": "delete", "key": "zz"})]) + "\n"
        d = cli_ok(s, "batch from stdin", "aql", "batch", input=lines)
        check(d == {"results": [{"affected": 1}, {"value": {"n": 1}},
                                {"rows": [{"key": "j1", "value": {"n": 1}}], "count": 1},
                                {"affected": 0}]}, "batch results", d)
        d = cli_ok(s, "batch from args", "aql", "batch", '{"op":"get","key":"j1"}',
                   '{"op":"update","where":"n = 1","add":{"n":2}}')
        check(d == {"results": [{"value": {"n": 1}}, {"affected": 1}]}, "batch args", d)
        # the NanaSQLite door reads what AQL wrote
        rc, out, err = cli(s, "get", "j1")
        check(rc == 0 and json.loads(out) == {"n": 3}, "the NanaSQLite door sees AQL's JSON",
              f"{rc} {out!r} {err!r}")
        # errors: the query's own (exit 1), bad usage (exit 2, nothing sent)
        rc, out, err = cli(s, "aql", "filter", "age >=")
        check(rc == 2 and "column 7" in err and out == "", "a bad predicate: exit 2, column",
              f"{rc} {err!r}")
        rc, out, err = cli(s, "aql", "update", "--where", "a = 1")
        check(rc == 2 and "--set" in err, "update without changes: exit 2", err)
        rc, out, err = cli(s, "aql", "frobnicate")
        check(rc == 2 and "unknown aql subcommand" in err, "unknown subcommand", err)
        rc, out, err = cli(s, "aql", "batch", input='{"op":"get"}\n')
        check(rc == 2 and "query 1" in err, "a bad batch line names it", err)
        rc, out, err = cli(s, "aql", "--help")
        check(rc == 0 and "--where PREDICATE" in out and "range START END" in out,
              "aql --help lists the subcommands and options", out[:200])
        rc, out, err = cli(s, "--help")
        check(rc == 0 and "aql SUBCOMMAND" in out, "--help lists aql", out[:100])
    finally:
        s.stop()


def test_cli_query_error_exit_1():
    s = Server("aql-cli-err").start()
    try:
        # a key that is not UTF-8 is the query's error (ERROR_VALIDATION_INVALID_KEY)
        p = subprocess.run([os.path.join(ARGS.bin_dir, "nanasqlite-cli"), "--port", str(s.port),
                            "aql", "get", b"\xff"], cwd=s.dir, capture_output=True,
                           timeout=TIMEOUT)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 1 and "ERROR_VALIDATION_INVALID_KEY" in err and "6000" in err,
              "a query's ErrorResponse: exit 1 with its code", f"{p.returncode} {err!r}")
    finally:
        s.stop()


def fill(c, n, collection="big"):
    """Writes n rows r000000.. through batches of 1000."""
    for b in range(0, n, 1000):
        c.batch([{"op": "set", "key": "r%06d" % i, "value": {"i": i, "pad": "x" * 200},
                  "collection": collection} for i in range(b, min(n, b + 1000))])


def test_python_client():
    s = Server("aql-py").start()
    try:
        with client(s) as c:
            c.set("p1", {"age": 40, "city": "Osaka"})
            c.set("p2", b"\xff\x00")
            c.set("p3", "plain text")
            check(c.get("p1") == b'{"age":40,"city":"Osaka"}', "values as bytes", c.get("p1"))
            check(c.get("p2") == b"\xff\x00", "bytes round trip", c.get("p2"))
            check(c.get("nope") is None, "a missing key is None")
            check(c.delete("p3") is True and c.delete("p3") is False, "delete says if it existed")
        with client(s, values="json") as c:
            check(c.get("p1") == {"age": 40, "city": "Osaka"}, "values as JSON")
            check(c.get("p2") == b"\xff\x00", "non-JSON values stay bytes in json mode")
            rows = c.filter("age >= 35")
            check(rows == [("p1", {"age": 40, "city": "Osaka"})], "filter", rows)
            n = c.update("age >= 35", set={"tag": "x"}, add={"n": 2}, mul={"age": 2})
            check(n == 1 and c.get("p1") == {"age": 80, "city": "Osaka", "tag": "x", "n": 2},
                  "update set/add/mul", c.get("p1"))
            res = c.batch([{"op": "get", "key": "p1"}, {"op": "delete", "key": "p2"},
                           {"op": "range", "start": "p", "end": "q"},
                           {"op": "set", "key": "p9", "value_base64": "AAE="}])
            check(res[1] == 1 and res[2] == [("p1", res[0])] and res[3] == 1, "batch", res)
            check(c.get("p9") == b"\x00\x01", "batch value_base64")
            pred = aql.parse_predicate('city = "Osaka"')
            check(c.filter(pred) == [("p1", res[0])], "a predicate given as bytes")
            try:
                c.set(b"\xff", 1)
                check(False, "a non-UTF-8 key raises")
            except errors.QueryError as e:
                check(e.error_type == "ERROR_VALIDATION_INVALID_KEY" and e.code == "6000",
                      "QueryError carries the code", (e.error_type, e.code))
            try:
                c.filter("age >")
                check(False, "a bad predicate raises")
            except ValueError as e:
                check("column 6" in str(e), "the predicate error names the column", str(e))
    finally:
        s.stop()


def test_python_stream_20000_rows():
    s = Server("aql-stream").start()
    try:
        with client(s, values="json") as c:
            fill(c, 20000)
            t0 = time.time()
            keys = []
            with c.stream_range("r", "r~", collection="big") as st:
                for k, v in st:
                    if v["i"] != len(keys):
                        check(False, "stream rows in order", (k, v["i"], len(keys)))
                        break
                    keys.append(k)
            check(len(keys) == 20000 and st.total == 20000,
                  "20,000 rows through the iterator, and StreamEnd's total", (len(keys), st.total))
            check(keys[0] == "r000000" and keys[-1] == "r019999", "first and last keys")
            print(f"  streamed 20000 rows in {time.time() - t0:.2f} s")
            rows = list(c.stream_filter("i >= 19990", collection="big", limit=5, offset=2))
            check([r[1]["i"] for r in rows] == [19992, 19993, 19994, 19995, 19996],
                  "stream_filter with limit and offset", rows)
    finally:
        s.stop()


def test_streams_closed_early_keep_the_connection_serving():
    """A stream closed after one row is cancelled, and the bytes it had
    received but not read are given back to the connection's window: 40
    such streams (each of which would fill its 1 MiB stream window) must
    leave the connection serving (16 MiB connection window)."""
    s = Server("aql-stream-close").start()
    try:
        with client(s, timeout=10) as c:
            fill(c, 20000)
            for i in range(40):
                st = c.stream_range("r", "r~", collection="big")
                first = next(st)
                check(first[0] == "r000000", "the first row of an early-closed stream")
                time.sleep(0.02)  # let the server fill the window
                st.close()
            check(c.get("r000001", collection="big") is not None,
                  "the connection serves after 40 cancelled streams")
            n = sum(1 for _ in c.stream_range("r", "r~", collection="big"))
            check(n == 20000, "a whole stream after the cancelled ones", n)
    finally:
        s.stop()


def test_async_client():
    s = Server("aql-async").start()
    try:
        async def main():
            async with aql.AsyncAqlClient(
                    port=s.port, ca_cert_path=os.path.join(s.dir, "cert.pem"),
                    private_key_path=os.path.join(s.dir, "nana_private.pem"),
                    values="json") as c:
                await asyncio.gather(*[c.set(f"a{i:03d}", {"i": i}) for i in range(50)])
                got = await asyncio.gather(*[c.get(f"a{i:03d}") for i in range(50)])
                check(got == [{"i": i} for i in range(50)], "concurrent async gets")
                st = await c.stream_range("a", "b", limit=10)
                keys = [k async for k, _ in st]
                check(keys == [f"a{i:03d}" for i in range(10)], "async stream", keys)
                check(await c.update("i < 5", set={"low": True}) == 5, "async update")
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        s.stop()


def setup():
    global aql, errors
    os.environ["NANASQLITE_CLIENT_LIB"] = os.path.abspath(ARGS.lib)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))
    from nanasqlite_server import aql as a, errors as e
    aql, errors = a, e
    return True


if __name__ == "__main__":
    sys.exit(serverlib.run_main(globals(), setup=setup,
                                extra_args=lambda ap: ap.add_argument("--lib", required=True)))
