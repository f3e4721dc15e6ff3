#!/usr/bin/env bash
# nanasqlite-server beside Redis 7 (with and without TLS) and beside the bare
# QUIC echo, in one go on this machine.
#
# usage: bench/compare.sh [--quick] [--runs N] [--seconds S] [--out DIR]
#                         [--client-threads N] [--server-arg ARG]... [--no-build]
#                         [--workloads get,set]
#
#   --quick             one run of 1.5 s per row, three load points (~2-3 min)
#   --runs N            interleaved runs of every comparison [3]
#   --seconds S         length of each run [3]
#   --out DIR           where results.json, table.md and the PNGs go [bench/results]
#   --client-threads N  load generator threads (nanasqlite-bench --threads and
#                       redis-benchmark --threads) [1]
#   --server-arg ARG    one more nanasqlite-server argument (repeat it; e.g.
#                       --server-arg --threads --server-arg 2)
#   --no-build          use build/ as it is
#   --workloads W       get,set (everything) [default], get, or set (only the
#                       SET rows: no QUIC echo, no latency-vs-load runs)
#
# Builds build/ (the default build type), makes throw-away credentials in a
# temporary directory, starts nanasqlite-server, redis-server (plain),
# redis-server (TLS only) and nanasqlite-quic-echo on 127.0.0.1 with free
# ports, runs bench/compare.py against them, draws bench/plot.gp, and stops
# everything it started on exit, Ctrl-C or failure. Durability is the same on
# both sides: nanasqlite writes every SET to SQLite's WAL before answering
# (synchronous=NORMAL), Redis appends every SET to its AOF before answering
# (appendonly yes, appendfsync everysec); neither fsyncs per write.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command_line="bench/compare.sh${*:+ $*}"

quick=0 runs=3 seconds=3 out=bench/results client_threads=1 build=1
runs_set=0 seconds_set=0 server_args=() workloads=get,set
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --runs) runs=${2:?--runs needs a number}; runs_set=1; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; seconds_set=1; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --client-threads) client_threads=${2:?--client-threads needs a number}; shift ;;
    --server-arg) server_args+=("${2?--server-arg needs an argument}"); shift ;;
    --no-build) build=0 ;;
    --workloads) workloads=${2:?--workloads needs get,set, get or set}; shift ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument: $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    [ "$runs_set" = 1 ] || runs=1
    [ "$seconds_set" = 1 ] || seconds=1.5
fi
case "$runs" in '' | *[!0-9]* | 0) echo "compare.sh: --runs: a positive number" >&2; exit 2 ;; esac
case "$workloads" in get,set | set,get | get | set) ;; *)
    echo "compare.sh: --workloads: get,set, get or set" >&2; exit 2 ;; esac

for tool in redis-server redis-benchmark redis-cli gnuplot python3 cmake; do
    command -v "$tool" >/dev/null || {
        echo "compare.sh: $tool is missing (scripts/install-deps, or apt-get install redis-server redis-tools gnuplot-nox)" >&2
        exit 2
    }
done

t_start=$(date +%s)
if [ "$build" = 1 ]; then
    echo "== building build/" >&2
    cmake -S . -B build >/dev/null
    cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
B=$root/build
for f in tools/nanasqlite-server tools/nanasqlite-bench tools/nanasqlite-cert-gen \
    tools/nanasqlite-key-gen tools/nanasqlite-quic-echo bench/nanasqlite-bench-quic; do
    [ -x "$B/$f" ] || { echo "compare.sh: $B/$f is missing (build first)" >&2; exit 2; }
done

# ---- everything started here is stopped on the way out ----------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nana-compare.XXXXXX")
pids=()
py_pid=
# ours PID: PID is still a child of this script (not a recycled number).
# shellcheck disable=SC2317  # called from the EXIT trap
ours() {
    [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$? pid
    set +e
    trap - EXIT INT TERM HUP
    if [ -n "$py_pid" ] && ours "$py_pid"; then
        kill -TERM "$py_pid" 2>/dev/null || true
        for _ in $(seq 50); do ours "$py_pid" || break; sleep 0.1; done
        ours "$py_pid" && kill -KILL "$py_pid" 2>/dev/null
    fi
    for pid in "${pids[@]}"; do ours "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
        if ours "$pid"; then
            echo "compare.sh: $pid did not stop on SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    case "$rc" in 0 | 129 | 130 | 143) ;; *)
        for log in "$tmp"/*.log; do
            [ -s "$log" ] && { echo "--- $log (last lines)" >&2; tail -n 5 "$log" >&2; }
        done
        ;;
    esac
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

free_tcp_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready PID FILE: waits up to 10 s for FILE (a port number) to appear.
wait_ready() {
    for _ in $(seq 100); do
        [ -s "$2" ] && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_redis redis|redis-tls: starts redis-server (TLS only for redis-tls) on a
# free port, with every write appended to its AOF (fsync once a second, as
# SQLite's WAL with synchronous=NORMAL: both survive the process dying) and
# no RDB snapshots; sets redis_port and redis_pid. Retries when another
# process took the port.
start_redis() {
    local name=$1 attempt port cli
    for attempt in 1 2 3; do
        port=$(free_tcp_port)
        mkdir -p "$tmp/$name"
        local args=(--bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec
            --dir "$tmp/$name" --logfile "$tmp/$name.log" --daemonize no)
        if [ "$name" = redis-tls ]; then
            args+=(--port 0 --tls-port "$port" --tls-cert-file "$tmp/cert.pem"
                --tls-key-file "$tmp/key.pem" --tls-ca-cert-file "$tmp/cert.pem"
                --tls-auth-clients no)
            cli=(redis-cli -h 127.0.0.1 -p "$port" --tls --cacert "$tmp/cert.pem")
        else
            args+=(--port "$port")
            cli=(redis-cli -h 127.0.0.1 -p "$port")
        fi
        redis-server "${args[@]}" </dev/null >/dev/null 2>&1 &
        redis_pid=$!
        pids+=("$redis_pid")
        for _ in $(seq 50); do
            if timeout 5 "${cli[@]}" ping 2>/dev/null | grep -q PONG; then
                redis_port=$port
                return 0
            fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        unset 'pids[${#pids[@]}-1]'
        echo "compare.sh: $name did not start on port $port (attempt $attempt)" >&2
    done
    echo "compare.sh: cannot start $name; see the log above" >&2
    return 1
}

echo "== credentials and servers in $tmp" >&2
(cd "$tmp" && "$B/tools/nanasqlite-cert-gen" >/dev/null && "$B/tools/nanasqlite-key-gen" >/dev/null)
"$B/tools/nanasqlite-quic-echo" certs "$tmp/echo" >/dev/null

# nanasqlite-server: the defaults, except calls in flight per connection (1024,
# as for the QUIC echo: stream credit to spare at 1x256) and the per-account
# rate limit (out of the way).
(cd "$tmp" && exec "$B/tools/nanasqlite-server" --host 127.0.0.1 --port 0 \
    --ready-file "$tmp/nana.port" --db "$tmp/bench.sqlite" --cert "$tmp/cert.pem" \
    --key "$tmp/key.pem" --public-key "$tmp/nana_public.pub" --synchronous normal \
    --max-streams 1024 --rate-limit 1000000000 --grace-ms 1000 --log-level warn \
    "${server_args[@]}" </dev/null >"$tmp/nanasqlite.log" 2>&1) &
nana_pid=$!
pids+=("$nana_pid")
wait_ready "$nana_pid" "$tmp/nana.port" || { echo "compare.sh: nanasqlite-server did not start" >&2; exit 1; }
nana_port=$(cat "$tmp/nana.port")

"$B/tools/nanasqlite-quic-echo" server --listen 127.0.0.1:0 --cert "$tmp/echo/server.pem" \
    --key "$tmp/echo/server.key" --retry never --max-streams 1024 --max-seconds 3600 \
    --ready-file "$tmp/echo.port" </dev/null >"$tmp/quic-echo.log" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
wait_ready "$echo_pid" "$tmp/echo.port" || { echo "compare.sh: nanasqlite-quic-echo did not start" >&2; exit 1; }
echo_port=$(cat "$tmp/echo.port")

start_redis redis
plain_port=$redis_port plain_pid=$redis_pid
start_redis redis-tls
tls_port=$redis_port tls_pid=$redis_pid

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
machine="$(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || commit="$commit+changes"
versions="$("$B/tools/nanasqlite-server" --version 2>/dev/null | head -n 1) (git $commit); $(redis-server --version | cut -d' ' -f1-3)"
echo "machine: $machine" >&2
echo "versions: $versions" >&2
echo "command: $command_line" >&2
echo "== measuring: $runs run(s) of ${seconds}s per row" >&2

mkdir -p "$out"
quick_flag=()
[ "$quick" = 1 ] && quick_flag=(--quick)
python3 "$root/bench/compare.py" --build "$B" --tmp "$tmp" --out "$out" --runs "$runs" \
    --seconds "$seconds" --client-threads "$client_threads" "${quick_flag[@]}" \
    --nana-port "$nana_port" --nana-pid "$nana_pid" \
    --redis-port "$plain_port" --redis-pid "$plain_pid" \
    --tls-port "$tls_port" --tls-pid "$tls_pid" \
    --echo-port "$echo_port" --echo-pid "$echo_pid" --echo-ca "$tmp/echo/ca.pem" \
    --command "$command_line" --machine "$machine" --versions "$versions" \
    --server-args="${server_args[*]}" --workloads "$workloads" &
py_pid=$!
py_rc=0
wait "$py_pid" || py_rc=$?
py_pid=

if gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo; then term=pngcairo; else term=png; fi
case "$workloads" in *get*) get=1 ;; *) get=0 ;; esac
if ! gnuplot -e "dir='$out'; term='$term'; get=$get" "$root/bench/plot.gp"; then
    echo "compare.sh: gnuplot failed" >&2
    py_rc=1
fi
echo
echo "machine: $machine"
echo "versions: $versions"
echo "command: $command_line"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); took $(($(date +%s) - t_start)) s"
echo "wrote $out/results.json, $out/table.md, $out/throughput.png$([ "$get" = 1 ] && echo ", $out/latency.png")"
exit "$py_rc"
