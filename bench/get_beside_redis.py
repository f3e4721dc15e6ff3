#!/usr/bin/env python3
"""Cached GET at 16 connections x 16 in flight: Redis with TLS
(redis-benchmark, AOF on), the NanaSQLite door and the gRPC door of
nanasqlite-server, interleaved in one sitting.

Each round starts a fresh nanasqlite-server and loads the three in turn
(the order alternates between rounds); Redis keeps one process, its key
space written once. Prints the median calls per second of each (and the
server CPU per call of the two doors).

usage: bench/get_beside_redis.py [--build build] [--rounds N]
"""
import argparse
import csv
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    tools = os.path.abspath(os.path.join(a.build, "tools"))
    work = tempfile.mkdtemp(prefix="nana-redis-")
    red = None
    try:
        subprocess.run([tools + "/nanasqlite-cert-gen"], cwd=work, check=True, capture_output=True)
        subprocess.run([tools + "/nanasqlite-key-gen"], cwd=work, check=True, capture_output=True)
        rport = free_port()
        red = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", work, "--port", "0", "--tls-port", str(rport),
             "--tls-cert-file", work + "/cert.pem", "--tls-key-file", work + "/key.pem",
             "--tls-ca-cert-file", work + "/cert.pem", "--tls-auth-clients", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        rb = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(rport), "--tls", "--cacert",
              work + "/cert.pem", "-c", "16", "-P", "16", "-d", "64", "-r", "100000"]
        subprocess.run(rb + ["-n", "400000", "-t", "set", "-q"], capture_output=True, check=True)
        res = {"redis-tls": [], "nana": [], "grpc": []}
        cpu = {"nana": [], "grpc": []}
        for i in range(a.rounds):
            port = free_port()
            srv = subprocess.Popen([tools + "/nanasqlite-server", "--port", str(port),
                                    "--log-level", "warn"], cwd=work,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            order = ["redis-tls", "nana", "grpc"] if i % 2 == 0 else ["grpc", "nana", "redis-tls"]
            for k in order:
                if k == "redis-tls":
                    r = subprocess.run(rb + ["-n", "1500000", "-t", "get", "--csv"],
                                       capture_output=True, text=True, check=True)
                    rows = [x for x in csv.reader(io.StringIO(r.stdout)) if x and x[0] != "test"]
                    res[k].append(float(rows[0][1]))
                    continue
                r = subprocess.run(
                    [tools + "/nanasqlite-bench", "--proto", k, "--port", str(port), "--ca",
                     work + "/cert.pem", "--key", work + "/nana_private.pem", "--workload", "get",
                     "-c", "16", "-P", "16", "--duration", "3", "--keyspace", "10000", "--db",
                     "bench.sqlite", "--json", "-q", "--server-pid", str(srv.pid)],
                    capture_output=True, text=True, check=True)
                d = json.loads(r.stdout.strip().splitlines()[-1])
                res[k].append(d["ops_per_sec"])
                cpu[k].append(d.get("server_cpu_us_per_op", 0))
            srv.terminate()
            srv.wait()
        for k, v in res.items():
            extra = f", server CPU {statistics.median(cpu[k]):.2f} us per call" if k in cpu else ""
            print(f"{k}: {statistics.median(v):,.0f} calls/s{extra}")
    finally:
        if red:
            red.terminate()
            red.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
