#!/usr/bin/env python3
"""Database files are interchangeable with Python NanaSQLite, both ways.

Python NanaSQLite keeps each table as
    CREATE TABLE IF NOT EXISTS "<name>" (key TEXT PRIMARY KEY, value TEXT)
with values written by json.dumps(value, ensure_ascii=False) (or compactly
by orjson) through INSERT OR REPLACE, and read back with json.loads. This
test does exactly that with Python's own sqlite3 and json modules (the
NanaSQLite package itself cannot be installed here: no PyPI), and drives
the C store through the nanasqlite-store tool:

  1. Python writes a file the NanaSQLite way; the C store reads every key.
  2. The C store writes a file; Python reads it the NanaSQLite way.

Usage: test_nanasqlite_files.py PATH/TO/nanasqlite-store
"""
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

TOOL = None

NANA_DDL = 'CREATE TABLE IF NOT EXISTS "{}" (key TEXT PRIMARY KEY, value TEXT)'

# Values a NanaSQLite user stores: nested, non-ASCII, big integers, floats.
SAMPLES = {
    "hello": "world",
    "user:1": {"name": "ナナ", "tags": ["sqlite", "quic"], "profile": {"age": 7, "ok": True}},
    "キー🔑": "値 with emoji 🎉 and \"quotes\" and \\ backslash",
    "nested": {"a": [1, [2, [3, {"b": None}]]], "e": {}, "l": []},
    "numbers": [0, -1, 1.5, 1e-05, 1e16, 123456789012345678901234567890, -0.0],
    "null": None,
    "bools": [True, False],
    "empty string": "",
    "control\tchars\n": "line1\nline2\ttab\u0001",
    "": "empty key",
}


def run_tool(db, *args, table=None, stdin=None):
    cmd = [TOOL, "--db", db]
    if table:
        cmd += ["--table", table]
    cmd += list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def loads(text):
    # Python's json.loads, as NanaSQLite reads values (NaN tokens allowed).
    return json.loads(text)


def same(a, b):
    """Equality that treats NaN as equal to NaN and keeps -0.0 apart."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


class PythonWritesCReads(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.dir.name, "py.sqlite")
        con = sqlite3.connect(self.db)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "mmap_size=268435456",
                       "cache_size=-65536", "temp_store=MEMORY"):
            con.execute("PRAGMA " + pragma)
        con.execute(NANA_DDL.format("data"))
        con.execute(NANA_DDL.format("other"))
        for k, v in SAMPLES.items():
            # the standard-library encoder NanaSQLite uses without orjson
            con.execute('INSERT OR REPLACE INTO "data" (key, value) VALUES (?, ?)',
                        (k, json.dumps(v, ensure_ascii=False)))
        # the compact form orjson writes, and Python's NaN/Infinity tokens
        con.execute('INSERT OR REPLACE INTO "data" (key, value) VALUES (?, ?)',
                    ("compact", json.dumps({"a": [1, 2]}, separators=(",", ":"))))
        con.execute('INSERT OR REPLACE INTO "data" (key, value) VALUES (?, ?)',
                    ("nan", json.dumps([float("nan"), float("inf"), -float("inf")])))
        con.execute('INSERT OR REPLACE INTO "other" (key, value) VALUES (?, ?)',
                    ("k", json.dumps({"table": "other"})))
        con.commit()
        con.close()

    def tearDown(self):
        self.dir.cleanup()

    def test_every_key_reads_back(self):
        for k, v in SAMPLES.items():
            rc, out, err = run_tool(self.db, "get", json.dumps(k))
            self.assertEqual(rc, 0, err)
            self.assertTrue(same(loads(out), v), (k, out))

    def test_dump_len_keys(self):
        rc, out, err = run_tool(self.db, "dump")
        self.assertEqual(rc, 0, err)
        d = loads(out)
        for k, v in SAMPLES.items():
            self.assertTrue(same(d[k], v), k)
        self.assertEqual(d["compact"], {"a": [1, 2]})
        nan, inf, ninf = d["nan"]
        self.assertTrue(math.isnan(nan) and inf == float("inf") and ninf == -float("inf"))
        rc, out, _ = run_tool(self.db, "len")
        self.assertEqual(int(out), len(SAMPLES) + 2)
        rc, out, _ = run_tool(self.db, "keys")
        self.assertEqual(set(loads(out)), set(SAMPLES) | {"compact", "nan"})

    def test_other_table_and_missing_key(self):
        rc, out, err = run_tool(self.db, "get", "k", table="other")
        self.assertEqual(rc, 0, err)
        self.assertEqual(loads(out), {"table": "other"})
        rc, out, err = run_tool(self.db, "get", "no-such-key")
        self.assertEqual(rc, 1)
        self.assertIn("NANA_ERR_NOTFOUND", err)
        self.assertIn("'no-such-key'", err)

    def test_c_updates_python_file_and_python_reads_it(self):
        rc, _, err = run_tool(self.db, "set", "added", '{"by": "C", "n": [1, 2.5]}')
        self.assertEqual(rc, 0, err)
        rc, _, err = run_tool(self.db, "incr", "counter", "5")
        self.assertEqual(rc, 0, err)
        con = sqlite3.connect(self.db)
        rows = dict(con.execute('SELECT key, value FROM "data"'))
        con.close()
        self.assertEqual(loads(rows["added"]), {"by": "C", "n": [1, 2.5]})
        self.assertEqual(loads(rows["counter"]), 5)
        self.assertTrue(same(loads(rows["user:1"]), SAMPLES["user:1"]))


class OrdersAsNanaSQLite(unittest.TestCase):
    """keys() and items() in the orders NanaSQLite gives on the same file:
    its keys() runs SELECT key FROM data (SQLite answers from the key's
    index), and with bulk_load its items()/values()/to_dict() list its cache,
    filled by SELECT key, value FROM data (row order). Asked of SQLite here,
    with NanaSQLite's own statements, on a file whose row order, key order
    and character order all differ (updates through INSERT OR REPLACE move
    a row to the end)."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.dir.name, "order.sqlite")
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(NANA_DDL.format("data"))
        for i, k in enumerate(["b", "é", "10", "B", "9", "a", "b", "Z", "é"]):
            con.execute('INSERT OR REPLACE INTO "data" (key, value) VALUES (?, ?)',
                        (k, json.dumps(i)))
        con.commit()
        self.nana_keys = [r[0] for r in con.execute("SELECT key FROM data")]
        self.nana_items = [[k, json.loads(v)] for k, v in
                           con.execute("SELECT key, value FROM data")]
        con.close()

    def tearDown(self):
        self.dir.cleanup()

    def test_orders(self):
        self.assertEqual(self.nana_keys, ["10", "9", "B", "Z", "a", "b", "é"])  # the index
        self.assertNotEqual([k for k, _ in self.nana_items], self.nana_keys)
        rc, out, err = run_tool(self.db, "keys")
        self.assertEqual(rc, 0, err)
        self.assertEqual(loads(out), self.nana_keys)
        rc, out, err = run_tool(self.db, "items")
        self.assertEqual(rc, 0, err)
        self.assertEqual(loads(out), self.nana_items)
        rc, out, err = run_tool(self.db, "dump")
        self.assertEqual(rc, 0, err)
        self.assertEqual([[k, v] for k, v in loads(out).items()], self.nana_items)


class CWritesPythonReads(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.dir.name, "c.sqlite")
        # Write every sample through the shell (one process, many commands).
        lines = ["set {} {}".format(json.dumps(k), json.dumps(v, ensure_ascii=False))
                 for k, v in SAMPLES.items()]
        rc, out, err = run_tool(self.db, stdin="\n".join(lines) + "\n")
        self.assertEqual(rc, 0, err)
        rc, _, err = run_tool(self.db, "set", "t-key", '"in another table"', table="second")
        self.assertEqual(rc, 0, err)

    def tearDown(self):
        self.dir.cleanup()

    def test_layout_is_nanasqlites(self):
        con = sqlite3.connect(self.db)
        ddl = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        self.assertEqual(ddl["data"], 'CREATE TABLE "data" (key TEXT PRIMARY KEY, value TEXT)')
        self.assertEqual(ddl["second"], 'CREATE TABLE "second" (key TEXT PRIMARY KEY, value TEXT)')
        self.assertEqual(con.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        types = set(r[0] for r in con.execute('SELECT DISTINCT typeof(value) FROM "data"'))
        self.assertEqual(types, {"text"})
        con.close()

    def test_python_reads_every_value(self):
        con = sqlite3.connect(self.db)
        for k, v in SAMPLES.items():
            row = con.execute('SELECT value FROM "data" WHERE key = ?', (k,)).fetchone()
            self.assertIsNotNone(row, k)
            self.assertTrue(same(json.loads(row[0]), v), (k, row[0]))
        row = con.execute('SELECT value FROM "second" WHERE key = ?', ("t-key",)).fetchone()
        self.assertEqual(json.loads(row[0]), "in another table")
        self.assertEqual(con.execute('SELECT COUNT(*) FROM "data"').fetchone()[0], len(SAMPLES))
        con.close()

    def test_invalid_json_is_refused_and_nothing_stored(self):
        for bad in ("{oops", "NaN", "[1,]", "'single'", "01"):
            rc, _, err = run_tool(self.db, "set", "bad", bad)
            self.assertEqual(rc, 1, bad)
            self.assertIn("NANA_ERR_JSON", err)
        con = sqlite3.connect(self.db)
        self.assertIsNone(con.execute('SELECT 1 FROM "data" WHERE key = ?', ("bad",)).fetchone())
        con.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    TOOL = os.path.abspath(sys.argv.pop(1))
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print("{} passed, {} failed".format(result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
