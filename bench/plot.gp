# Plots of bench/compare.sh, from the data files bench/compare.py writes.
# usage: gnuplot -e "dir='bench/results'; term='pngcairo'" bench/plot.gp
# (get=0: a run of SETs only; no GET panel, no latency plot)
if (!exists("dir")) dir = "bench/results"
if (!exists("term")) term = "pngcairo"
if (!exists("get")) get = 1
set datafile missing "?"
if (term eq "pngcairo") {
    set terminal pngcairo size 1200,560 font ",10"
} else {
    set terminal png size 1200,560
}

# ---- throughput vs connections x pipeline, the three servers -------------------
set output dir."/throughput.png"
set multiplot layout 1,2 title "ops/s by shape (connections x calls in flight), 64-byte values, 100,000 keys; medians"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1000:*]
set format y "%.0s%c"
set grid ytics
set key below horizontal
set ylabel "ops/s (log scale)"
if (get) {
    set title "GET"
    plot dir."/throughput.dat" using 2:xtic(1) title "nanasqlite-server" lc rgb "#1b7837", \
         ''                    using 3 title "redis" lc rgb "#b2abd2", \
         ''                    using 4 title "redis + TLS" lc rgb "#5e3c99"
}
set title "SET, a new value each (WAL, synchronous=NORMAL / AOF, everysec)"
plot dir."/throughput.dat" every ::0::3 using 5:xtic(1) title "nanasqlite-server" lc rgb "#1b7837", \
     ''                    every ::0::3 using 6 title "redis" lc rgb "#b2abd2", \
     ''                    every ::0::3 using 7 title "redis + TLS" lc rgb "#5e3c99"
unset multiplot

# ---- nanasqlite latency vs offered load ------------------------------------------
if (!get) exit
reset
set datafile missing "?"
if (term eq "pngcairo") {
    set terminal pngcairo size 800,520 font ",10"
} else {
    set terminal png size 800,520
}
set output dir."/latency.png"
set title "nanasqlite-server GET latency vs offered load (open loop, 16 x 16; medians)"
set xlabel "offered load, calls/s"
set ylabel "latency, µs (log scale)"
set logscale y
set format x "%.0s%c"
set xrange [0:*]
set offsets 0, graph 0.1, 0, 0
set grid
set key top left
plot dir."/latency.dat" using 1:4 with linespoints lw 2 pt 7 title "p50", \
     ''                 using 1:4:(sprintf("%.0f%% of peak", $2)) with labels offset 0,-1.2 notitle, \
     ''                 using 1:5 with linespoints lw 2 pt 7 title "p99", \
     ''                 using 1:6 with linespoints lw 2 pt 7 title "p99.9", \
     1000 with lines dt 2 lc rgb "gray40" title "1 ms"
