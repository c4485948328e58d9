# sidelane bench --plot: redraw with `gnuplot tls-latency-conn_64.gp`
set terminal svg size 900,520 dynamic font 'sans,12' background '#ffffff'
set output 'tests/bench/tls-latency-conn_64.svg'
set grid
set key outside right top
set title 'tls: conn 64 B latency (quantiles, mean over 5 rounds)'
set logscale x
set xlabel 'latency, us (log)'
set ylabel 'fraction of transactions at or below'
set yrange [0:1]
set key autotitle columnhead
set datafile missing 'NaN'
plot for [i=2:5] 'tests/bench/tls-latency-conn_64.dat' using i:1 with lines lw 2 title columnhead(i)
