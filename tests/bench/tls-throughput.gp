# sidelane bench --plot: redraw with `gnuplot tls-throughput.gp`
set terminal svg size 900,520 dynamic font 'sans,12' background '#ffffff'
set output 'tests/bench/tls-throughput.svg'
set grid
set key outside right top
set title 'tls: throughput relative to direct, median of 5 rounds'
set ylabel 'tx/s, Gbit/s or conn/s (x; higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set xtics rotate by -30
set key autotitle columnhead
set datafile missing 'NaN'
plot for [i=2:5] 'tests/bench/tls-throughput.dat' using i:xtic(1) title columnhead(i)
