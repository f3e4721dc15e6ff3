#!/usr/bin/env python3
"""AQL batches and streams through the Python client: a fresh server in a
scratch directory, N rows stored as ExecuteBatch calls of 1,000 sets, then
read back through ExecuteStream (the client's stream iterator), R rounds;
prints the seconds of each part and the server's VmRSS before and after.

usage: bench/aql_stream.py [--build build] [--rows 200000] [--rounds 3]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    lib = [os.path.join(build, "src/client", f) for f in os.listdir(os.path.join(build, "src/client"))
           if f.startswith("libnanasqlite-client.so")][0]
    os.environ["NANASQLITE_CLIENT_LIB"] = lib
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from nanasqlite_server.aql import AqlClient
    work = tempfile.mkdtemp(prefix="nana-aqlstream-")
    for tool in ("nanasqlite-cert-gen", "nanasqlite-key-gen"):
        subprocess.run([os.path.join(build, "tools", tool)], cwd=work, check=True,
                       capture_output=True)
    srv = subprocess.Popen([os.path.join(build, "tools", "nanasqlite-server"), "--port", "0",
                            "--ready-file", "port.txt", "--log-level", "warn"], cwd=work,
                           stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(work, "port.txt")
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = int(open(port_file).read())
        with AqlClient(port=port, ca_cert_path=os.path.join(work, "cert.pem"),
                       private_key_path=os.path.join(work, "nana_private.pem"),
                       collection="big") as c:
            t0 = time.time()
            for i in range(0, a.rows, 1000):
                c.batch([{"op": "set", "key": "k%07d" % j, "value": {"i": j, "pad": "x" * 40}}
                         for j in range(i, min(i + 1000, a.rows))])
            print(f"stored {a.rows} rows in {a.rows // 1000} batches: {time.time() - t0:.2f} s")
            for r in range(a.rounds):
                base = rss_kb(srv.pid)
                t0 = time.time()
                n = 0
                with c.stream_range("k", "l") as rows:
                    for _ in rows:
                        n += 1
                print(f"round {r + 1}: streamed {n} rows in {time.time() - t0:.2f} s; "
                      f"server VmRSS {base} -> {rss_kb(srv.pid)} KiB")
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    main()
