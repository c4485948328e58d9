# sidelane bench --plot: redraw with `gnuplot sidecar-latency-rr_1k_c64.gp`
set terminal svg size 900,520 dynamic font 'sans,12' background '#ffffff'
set output 'tests/bench/sidecar-latency-rr_1k_c64.svg'
set grid
set key outside right top
set title 'sidecar: rr 1 KiB x64 latency (quantiles, mean over 5 rounds)'
set logscale x
set xlabel 'latency, us (log)'
set ylabel 'fraction of transactions at or below'
set yrange [0:1]
set key autotitle columnhead
set datafile missing 'NaN'
plot for [i=2:6] 'tests/bench/sidecar-latency-rr_1k_c64.dat' using i:1 with lines lw 2 title columnhead(i)
