#!/usr/bin/env python3
"""End-to-end tests of how the server treats database files: names a client
may not use (SQLite's companion files, the lock file, the backups folder,
other names of the default database, files that are not databases), one
server per database file, damaged databases, a failed start that must leave
nothing behind, the log's rate limit, SQLite's internal tables and backup
names. The real binary on loopback, driven by wire_driver.

Ends with "N passed, M failed"; exit status 1 if anything failed.
"""
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib  # noqa: E402
import test_server as ts  # noqa: E402
from serverlib import Server, check  # noqa: E402
from test_server import err, ok, result  # noqa: E402

ARGS = None


class DefaultDbDriver(ts.Driver):
    """A driver whose calls name the default database (db nil) unless they name
    another: a connection would otherwise keep using the last database named."""

    def call(self, method, *args, id="a", **kw):
        kw.setdefault("db", None)
        return super().call(method, *args, id=id, **kw)


def driver(s):
    ts.ARGS = serverlib.ARGS  # the driver reads its path from test_server's arguments
    return DefaultDbDriver(s)


def run_server(s, *flags, wait=15):
    """Runs nanasqlite-server in |s|'s directory, expecting it to fail at start.
    One still running after |wait| seconds has started: it is stopped, and its
    result has returncode None."""
    p = subprocess.Popen([os.path.join(ARGS.bin_dir, "nanasqlite-server"), *flags], cwd=s.dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, errs = p.communicate(timeout=wait)
        return subprocess.CompletedProcess(p.args, p.returncode, out, errs)
    except subprocess.TimeoutExpired:
        p.terminate()
        out, errs = p.communicate(timeout=30)
        return subprocess.CompletedProcess(p.args, None, out, errs)


def integrity(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def write_keys(d, prefix, n, chunk=500):
    """Writes n acknowledged keys through the default database; returns them."""
    keys = []
    for start in range(0, n, chunk):
        batch = {f"{prefix}{i:05d}": {"i": i, "pad": "p" * 64} for i in range(start, start + chunk)}
        r = d.call("batch_update", batch)
        check(ok(r), f"batch_update {prefix}{start}", r)
        if ok(r):
            keys += list(batch)
    return keys


# Names that reach files SQLite or the server use for something else.
BAD_NAMES = ["server_db.sqlite-wal", "server_db.sqlite-shm", "server_db.sqlite-journal",
             "server_db.sqlite-mj0A1B2C9D3", "server_db.sqlite-lock", "SERVER_DB.SQLITE-WAL",
             "other.db-wal", "backups"]
# Links made in the directory: each resolves to such a file.
LINKS = {"walalias.db": "server_db.sqlite-wal", "shmalias.db": "server_db.sqlite-shm",
         "alias.db": "server_db.sqlite", "inbackups.db": "backups/snap.db"}


def attack(s, d, phase):
    """Every bad name is refused, and writing 2 MB through it is never accepted."""
    big = "x" * 100_000
    for name in BAD_NAMES + list(LINKS) + ["hard.db", "notes.txt", "empty.db"]:
        r = d.call("__len__", db=name)
        check(err(r, "PermissionError", "Invalid database name"), f"{phase}: {name} refused", r)
        if ok(r):  # the old server took it: this is the attack that loses data
            for i in range(20):
                d.call("__setitem__", f"a{i}", big, db=name)
    for name in ["server_db.sqlite-journal", "server_db.sqlite-mj0A1B2C9D3", "notes.txt-wal"]:
        check(not os.path.exists(os.path.join(s.dir, name)), f"{phase}: {name} not created")
    with open(os.path.join(s.dir, "notes.txt")) as f:
        check(f.read() == "not a database\n", f"{phase}: notes.txt untouched")
    check(os.path.getsize(os.path.join(s.dir, "empty.db")) == 0, f"{phase}: empty.db untouched")


def test_name_attacks_keep_the_default_database():
    s = Server("names").start()
    open(os.path.join(s.dir, "notes.txt"), "w").write("not a database\n")
    open(os.path.join(s.dir, "empty.db"), "w").close()
    con = sqlite3.connect(os.path.join(s.dir, "backups", "snap.db"))
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login")
    keys = write_keys(d, "k", 2000)
    check(os.path.getsize(os.path.join(s.dir, "server_db.sqlite-wal")) > 0, "the WAL holds data")
    for link, target in LINKS.items():
        os.symlink(target, os.path.join(s.dir, link))
    os.link(os.path.join(s.dir, "server_db.sqlite"), os.path.join(s.dir, "hard.db"))
    attack(s, d, "non-empty WAL")
    check(ok(d.call("__setitem__", "named", 1, db="other.db")), "an ordinary name still works")
    d.close()
    check(s.stop() == 0, "stop")
    # After a restart the WAL is empty: the case that lost 4,500 keys.
    s.start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login after restart")
    wal = os.path.join(s.dir, "server_db.sqlite-wal")
    check(not os.path.exists(wal) or os.path.getsize(wal) == 0, "the WAL is empty after restart")
    attack(s, d, "empty WAL")
    keys += write_keys(d, "m", 1000)
    attack(s, d, "WAL written after restart")
    d.close()
    check(s.stop() == 0, "stop")
    s.start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login after second restart")
    got = {}
    for i in range(0, len(keys), 500):
        r = d.call("batch_get", keys[i:i + 500])
        check(ok(r), "batch_get", r)
        if ok(r):
            got.update(r["result"])
    check(len(got) == len(keys) == 3000, "every acknowledged key kept", (len(got), len(keys)))
    check(result(d.call("__getitem__", "named", db="other.db")) == 1, "the named database kept")
    d.close()
    check(s.stop() == 0, "stop")
    check(integrity(os.path.join(s.dir, "server_db.sqlite")) == "ok", "integrity_check ok")
    check(not os.path.exists(os.path.join(s.dir, "server_db.sqlite-lock")),
          "the lock file is removed at stop")


def test_many_names_of_one_file():
    """Links to one named database share its store, however many (the
    registry grows while the file's entry is in hand)."""
    s = Server("manynames").start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login")
    check(ok(d.call("__setitem__", "k", "v", db="target.db")), "target.db")
    for i in range(20):
        os.symlink("target.db", os.path.join(s.dir, f"name{i}.db"))
    for i in range(20):
        r = d.call("__getitem__", "k", db=f"name{i}.db")
        check(result(r) == "v", f"name{i}.db shares the store", r)
    check(s.alive(), "alive")
    d.close()
    check(s.stop() == 0, "stop")


def test_two_servers_one_file():
    a = Server("twoa").start()
    d = driver(a)
    check(d.login() == "AUTH_OK", "login a")
    check(ok(d.call("__setitem__", "k", "from a", db="shared.db")), "a opens shared.db")
    check(os.path.exists(os.path.join(a.dir, "server_db.sqlite-lock")), "a holds the lock file")
    # A second server on the same default database refuses to start, naming the holder.
    p = run_server(a, "--port", "0")
    check(p.returncode == 1 and f"pid {a.proc.pid}" in p.stderr and "in use" in p.stderr,
          "second server refuses the default database, naming the holder", p.stderr)
    check(p.stderr.count("\n") == 1, "in one line", p.stderr)
    # A second server with another default database refuses a named one a holds.
    b = Server("twob")
    b.dir = a.dir
    b.flags = ["--db", "b.sqlite"]
    b.start()
    db = driver(b)
    check(db.login() == "AUTH_OK", "login b")
    r = db.call("__getitem__", "k", db="shared.db")
    check(err(r, "NanaSQLiteLockError", f"pid {a.proc.pid}"), "b refuses shared.db, naming a", r)
    check(ok(d.call("__setitem__", "k2", "still a", db="shared.db")), "a keeps serving it")
    d.close()
    check(a.stop() == 0, "stop a")
    r = db.call("__getitem__", "k2", db="shared.db")
    check(result(r) == "still a", "b serves shared.db once a stopped", r)
    db.close()
    check(b.stop() == 0, "stop b")


def damage(path):
    """Writes garbage over one leaf page of the 'data' table of a closed
    database (one in the middle: the rows on other pages stay readable)."""
    con = sqlite3.connect(path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    leaves = [r[0] for r in con.execute(
        "SELECT pageno FROM dbstat WHERE name='data' AND pagetype='leaf' ORDER BY pageno")]
    con.close()
    check(len(leaves) >= 3, "the table spans several leaf pages", leaves)
    page = leaves[len(leaves) // 2]
    with open(path, "r+b") as f:
        f.seek(page_size * (page - 1))
        f.write(bytes((i * 7 + 13) & 0xff for i in range(page_size)))


def test_damaged_database():
    s = Server("damaged").start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login")
    keys = write_keys(d, "c", 1000, chunk=250)
    check(ok(d.call("__setitem__", "fine", 1, db="other.db")), "a second database")
    d.close()
    check(s.stop() == 0, "stop")
    path = os.path.join(s.dir, "server_db.sqlite")
    damage(path)
    # The default check at open refuses to serve it: the server does not start.
    p = run_server(s, "--port", "0")
    check(p.returncode == 1 and "damaged" in p.stderr and "server_db.sqlite" in p.stderr,
          "damaged default database: the server refuses to start", p.stderr)
    check(not os.path.exists(path + "-lock"), "no lock file left by the failed start")
    # Without the check it starts; the first damaged page read makes it refused.
    s.flags = ["--check-at-open", "none"]
    s.start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login with --check-at-open none")
    first_bad = None
    for k in keys:
        r = d.call("__getitem__", k)
        if not ok(r):
            first_bad = r
            break
    check(err(first_bad, "NanaSQLiteDatabaseError"), "a damaged page is a database error", first_bad)
    r = d.call("__setitem__", "new", 1)
    check(err(r, "NanaSQLiteDatabaseError", "damaged"), "writes are refused from then on", r)
    r = d.call("__len__")
    check(err(r, "NanaSQLiteDatabaseError", "server_db.sqlite"), "every call, naming the db", r)
    check(result(d.call("__getitem__", "fine", db="other.db")) == 1, "other databases served")
    d.close()
    s.stop()
    log = s.log_text()
    lines = [x for x in log.splitlines() if "ERROR" in x and "is damaged" in x and path in x]
    check(len(lines) == 1, "logged once as an error naming the file", lines)
    # --allow-corrupt serves it for recovery.
    s.flags = ["--allow-corrupt"]
    s.start()
    d = driver(s)
    check(d.login() == "AUTH_OK", "login with --allow-corrupt")
    got = sum(1 for k in keys if ok(d.call("__getitem__", k)))
    check(0 < got < len(keys), "readable keys can be read out", got)
    check(ok(d.call("__setitem__", "rescued", 1)), "served, writes included")
    d.close()
    s.stop()
    check("serving it anyway" in s.log_text(), "the damage is logged with --allow-corrupt too")
    # A damaged named database is refused; the default one is served.
    s2 = Server("damagednamed").start()
    d = driver(s2)
    check(d.login() == "AUTH_OK", "login")
    batch = {f"n{i:05d}": "v" * 300 for i in range(1000)}
    check(ok(d.call("batch_update", batch, db="named.db")), "fill named.db")
    d.close()
    s2.stop()
    damage(os.path.join(s2.dir, "named.db"))
    s2.start()
    d = driver(s2)
    check(d.login() == "AUTH_OK", "login")
    r = d.call("__len__", db="named.db")
    check(err(r, "NanaSQLiteDatabaseError", "named.db"), "damaged named database refused", r)
    r = d.call("__setitem__", "x", 1, db="named.db")
    check(err(r, "NanaSQLiteDatabaseError", "damaged"), "and stays refused", r)
    check(ok(d.call("__setitem__", "x", 1)), "the default database is served")
    d.close()
    s2.stop()
    log = s2.log_text()
    check(any("ERROR" in x and "named.db" in x and "damaged" in x for x in log.splitlines()),
          "the damaged named database is logged as an error", log[-2000:])


def test_failed_start_creates_nothing():
    s = Server("nothing")
    data = os.path.join(s.dir, "data")
    os.makedirs(data)
    db = os.path.join("data", "server_db.sqlite")
    # The port is in use.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    p = run_server(s, "--port", str(port), "--db", db)
    sock.close()
    check(p.returncode == 1, "port in use: exit 1", p.returncode)
    check(f"cannot bind 127.0.0.1 port {port}: Address already in use" in p.stderr,
          "the bind error names the address and port", p.stderr)
    check(os.listdir(data) == [], "port in use: nothing created", os.listdir(data))
    # A certificate that is not one.
    with open(os.path.join(s.dir, "bad.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    p = run_server(s, "--port", "0", "--db", db, "--cert", "bad.pem")
    check(p.returncode == 1, "bad certificate: exit 1", p.stderr)
    check(os.listdir(data) == [], "bad certificate: nothing created", os.listdir(data))
    p = run_server(s, "--check-at-open", "sometimes")
    check(p.returncode == 2 and "quick, full or none" in p.stderr, "bad --check-at-open", p.stderr)
    p = run_server(s, "--help")
    check(p.returncode == 0 and "--check-at-open" in p.stdout and "--allow-corrupt" in p.stdout,
          "--help lists the database flags")
    # A good start then creates the database, its lock and backups/.
    s.flags = ["--db", db]
    s.start()
    check(sorted(os.listdir(data))[:1] == ["backups"] and os.path.exists(os.path.join(s.dir, db)),
          "a good start creates the database", os.listdir(data))
    s.stop()


def test_log_rate_limit():
    s = Server("lograte", ["--no-bans"]).start()
    d = driver(s)
    check(d.connect().get("open"), "connect")
    n = 400
    t0 = time.time()
    for _ in range(n):
        d.auth(corrupt=True)
    elapsed = time.time() - t0
    d.close()
    s.stop()
    log = s.log_text()
    written = sum(1 for x in log.splitlines() if " auth failed from " in x and "suppressed" not in x)
    check(written <= 50 + 10 * (elapsed + 1), "repeated lines are rate-limited",
          (written, elapsed))
    dropped = sum(int(m) for m in re.findall(
        r"suppressed (\d+) similar messages in [0-9.]+ s: \"conn %llu auth failed", log))
    check(dropped > 0 and written + dropped == n, "every dropped line is counted", (written, dropped))


def test_internal_tables_unreachable():
    accounts = [{"name": "sql", "allowed_methods": [
        "query", "count", "exists", "sql_insert", "sql_update", "sql_delete", "keys",
        "get_table_schema", "table_exists", "list_tables", "create_table", "__setitem__",
        "drop_table"]}]
    s = Server("internal", accounts=accounts, keys=("sql",)).start()
    d = driver(s)
    check(d.login(key="sql", account="sql") == "AUTH_OK", "login")
    check(ok(d.call("create_table", "seq", {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "v": "TEXT"})),
          "a table that makes sqlite_sequence")
    check(ok(d.call("sql_insert", "seq", {"v": "x"})), "sql_insert into it")
    for t in ["sqlite_master", "sqlite_schema", "SQLITE_MASTER", "sqlite_temp_master",
              "sqlite_sequence"]:
        r = d.call("query", kwargs={"table_name": t})
        check(err(r, "NanaSQLiteValidationError", "sqlite_"), f"query {t} refused", r)
    calls = [("count", [], {"table_name": "sqlite_master"}),
             ("exists", [], {"table_name": "sqlite_master"}),
             ("sql_insert", ["sqlite_sequence", {"name": "seq", "seq": 9}], {}),
             ("sql_update", ["sqlite_sequence", {"seq": 0}, "1=1"], {}),
             ("sql_delete", ["sqlite_sequence", "1=1"], {}),
             ("get_table_schema", ["sqlite_master"], {}),
             ("table_exists", ["sqlite_sequence"], {}),
             ("create_table", ["sqlite_x", {"a": "TEXT"}], {}),
             ("drop_table", ["sqlite_sequence"], {})]
    for m, a, kw in calls:
        r = d.cmd(op="call", method=m, args=a, kwargs=kw)["reply"]
        check(err(r, "NanaSQLiteValidationError"), f"{m} on an internal table refused", r)
    r = d.call("keys", table="sqlite_master")
    check(err(r, "NanaSQLiteValidationError"), "a table view of sqlite_master refused", r)
    tables = result(d.call("list_tables"))
    check(isinstance(tables, list) and not any(t.startswith("sqlite_") for t in tables),
          "list_tables hides SQLite's tables", tables)
    check(s.alive(), "alive")
    d.close()
    s.stop()


def test_backup_names():
    accounts = [{"name": "adm", "allowed_methods": ["backup", "restore", "__setitem__"]}]
    s = Server("bkname", accounts=accounts, keys=("adm",)).start()
    d = driver(s)
    check(d.login(key="adm", account="adm") == "AUTH_OK", "login")
    check(ok(d.call("__setitem__", "k", 1)), "set")
    r = d.call("backup", "b" * 300)
    check(err(r, "NanaSQLiteValidationError", "128"), "a 300-character name is a validation error",
          r)
    for name in ["file:x.db", "file:///tmp/x.db", "http:x.db", "sub/file:x.db"]:
        r = d.call("backup", name)
        check(err(r, "NanaSQLiteValidationError", "URI"), f"backup {name!r} refused", r)
        r = d.call("restore", name)
        check(err(r, "NanaSQLiteValidationError"), f"restore {name!r} refused", r)
    check(not any(":" in f for f in os.listdir(os.path.join(s.dir, "backups"))),
          "no URI-named file made")
    r = d.call("backup", "2026-01-01T10:00:00.db")
    check(ok(r), "a timestamp with colons is a name, not a URI", r)
    check(ok(d.call("backup", "b" * 128)), "a 128-character name is accepted")
    check(s.alive(), "alive")
    d.close()
    s.stop()


def main():
    return serverlib.run_main(globals(), driver=True)


if __name__ == "__main__":
    sys.exit(main())
