# Plot of bench/etcd_compare.py, from the etcd.dat it writes.
# usage: gnuplot -e "dir='bench/results/etcd'" bench/etcd_compare.gp
# Columns: 1 shape; req/s 2-5 reads (etcd linearizable, etcd serializable,
# nanasqlite h2c, nanasqlite TLS), 6-8 writes (etcd, nanasqlite h2c,
# nanasqlite TLS); p99 ms 9-12 reads, 13-15 writes, in the same order.
if (!exists("dir")) dir = "bench/results/etcd"
set datafile missing "?"
set terminal pngcairo size 1200,900 font ",10"
set output dir."/etcd_compare.png"
set multiplot layout 2,2 title "etcd 3.4 and nanasqlite-server over gRPC/HTTP/2 on one 2-core machine (loopback), 64-byte values, both fsync at every commit; medians"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set logscale y
set format y "%.0s%c"

set title "reads: one present key (h2load)"
set ylabel "requests/s (log scale)"
plot dir."/etcd.dat" using 2:xtic(1) title "etcd Range, linearizable" lc rgb "#b2abd2", \
     ''              using 3 title "etcd Range, serializable" lc rgb "#5e3c99", \
     ''              using 4 title "nanasqlite Get, h2c" lc rgb "#a6dba0", \
     ''              using 5 title "nanasqlite Get, TLS" lc rgb "#1b7837"

set title "writes: a new value each, 10,000 keys (grpc-go load generator)"
plot dir."/etcd.dat" using 6:xtic(1) title "etcd Put" lc rgb "#5e3c99", \
     ''              using 7 title "nanasqlite Set, h2c" lc rgb "#a6dba0", \
     ''              using 8 title "nanasqlite Set, TLS" lc rgb "#1b7837"

set format y "%g"
set title "reads: p99 latency"
set ylabel "ms (log scale)"
set xlabel "connections x calls in flight on each"
plot dir."/etcd.dat" using 9:xtic(1) title "etcd Range, linearizable" lc rgb "#b2abd2", \
     ''              using 10 title "etcd Range, serializable" lc rgb "#5e3c99", \
     ''              using 11 title "nanasqlite Get, h2c" lc rgb "#a6dba0", \
     ''              using 12 title "nanasqlite Get, TLS" lc rgb "#1b7837"

set title "writes: p99 latency"
plot dir."/etcd.dat" using 13:xtic(1) title "etcd Put" lc rgb "#5e3c99", \
     ''              using 14 title "nanasqlite Set, h2c" lc rgb "#a6dba0", \
     ''              using 15 title "nanasqlite Set, TLS" lc rgb "#1b7837"
unset multiplot
