"""Shared by the end-to-end tests: a real nanasqlite-server started in a
fresh directory on a loopback port (with its own certificate and keys), and
a pass/fail counter. Every wait is bounded.

Set ARGS (bin_dir, tmp) before starting a Server.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import time
import traceback

ARGS = None  # set by the test runner: .bin_dir, .tmp
CHECKS = {"passed": 0, "failed": 0}


def check(cond, what, detail=""):
    if cond:
        CHECKS["passed"] += 1
    else:
        CHECKS["failed"] += 1
        print(f"  FAIL: {what} {detail}", flush=True)


class Server:
    def __init__(self, name, flags=(), accounts=None, keys=("nana",)):
        self.dir = os.path.join(ARGS.tmp, f"e2e-{name}-{os.getpid()}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.run_tool("nanasqlite-cert-gen")
        for k in keys:
            self.run_tool("nanasqlite-key-gen", "--prefix", k)
        self.flags = list(flags)
        if accounts is not None:
            self.write_accounts(accounts)
            self.flags += ["--accounts", "accounts.json"]
        self.proc = None
        self.port = None

    def run_tool(self, tool, *args):
        subprocess.run([os.path.join(ARGS.bin_dir, tool), *args], cwd=self.dir, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)

    def pub(self, prefix):
        with open(os.path.join(self.dir, f"{prefix}_public.pub")) as f:
            return f.read().strip()

    def write_accounts(self, accounts, path="accounts.json"):
        doc = {"accounts": [dict(a, public_key=self.pub(a.pop("key", a["name"])))
                            for a in [dict(x) for x in accounts]]}
        tmp = os.path.join(self.dir, path + ".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(self.dir, path))

    def start(self, extra=(), expect_ok=True):
        ready = os.path.join(self.dir, "port.txt")
        if os.path.exists(ready):
            os.unlink(ready)
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(ARGS.bin_dir, "nanasqlite-server"), "--port", "0", "--ready-file",
             "port.txt", "--log-level", "debug", *self.flags, *extra],
            cwd=self.dir, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(ready) and open(ready).read().strip():
                self.port = int(open(ready).read())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if expect_ok:
            raise RuntimeError("server did not start: " + self.log_text())
        return self

    def log_text(self):
        with open(os.path.join(self.dir, "server.log")) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        log = self.log_text()
        check("Sanitizer" not in log and "runtime error:" not in log,
              "no sanitizer report in the server log", self.dir)
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None


def run_main(module_globals, driver=False, extra_args=None, setup=None):
    """Parses the common arguments (--bin-dir, --tmp[, --driver], test names,
    and whatever |extra_args| adds to the parser), calls |setup| (if given)
    once, runs every test_* function of |module_globals| (or the named ones),
    and returns the exit status; ends with "N passed, M failed"."""
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    if driver:
        ap.add_argument("--driver", required=True)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("only", nargs="*")
    if extra_args:
        extra_args(ap)
    args = ap.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)
    if driver:
        args.driver = os.path.abspath(args.driver)
    args.tmp = os.path.abspath(args.tmp)
    os.makedirs(args.tmp, exist_ok=True)
    ARGS = args
    module_globals["ARGS"] = args
    if setup and not setup():
        CHECKS["failed"] += 1
        print(f"{CHECKS['passed']} passed, {CHECKS['failed']} failed")
        return 1
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f)]
    for name, fn in tests:
        if args.only and name not in args.only:
            continue
        print(f"{name}", flush=True)
        before = CHECKS["failed"]
        try:
            fn()
        except Exception:
            CHECKS["failed"] += 1
            traceback.print_exc()
        print(f"  {'ok' if CHECKS['failed'] == before else 'FAILED'}", flush=True)
    print(f"{CHECKS['passed']} passed, {CHECKS['failed']} failed")
    return 1 if CHECKS["failed"] else 0

