#!/usr/bin/env bash
# Start-up at scale, from process start, SQLite and RabbitMQ, each beside its raw C loop, and a plot of
# start-up time and memory against the number of queues (docs/images/start-scale.png).
#   bash Benchmarks/scripts/start-scale.sh [path/to/fairway]      (default .build/release/fairway)
#   ROUNDS=3 (default); AMQP=0 skips RabbitMQ (otherwise: bash .ci/start-broker first); PLOT_ONLY=1 redraws
#   the plot from docs/images/start-scale.csv.
# Needs gnuplot (apt-get install -y gnuplot-nox), librabbitmq-dev and libsqlite3-dev for the raw loops.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-.build/release/fairway}
rounds=${ROUNDS:-3}
mkdir -p "$here/.build" docs/images
cc -O2 -o "$here/.build/raw-sqlite-drain" "$here/raw-sqlite-drain.c" -lsqlite3
cc -O2 -o "$here/.build/raw-amqp-drain" "$here/raw-amqp-drain.c" -lrabbitmq
csv=docs/images/start-scale.csv
if [ "${PLOT_ONLY:-0}" = 0 ]; then
rm -f "$csv"
python3 "$here/start-scale.py" sqlite --queues 120,1000,10000 --per 1000,100,10 --rounds "$rounds" \
    --fairway "$bin" --csv "$csv"
if [ "${AMQP:-1}" != 0 ]; then
    python3 "$here/start-scale.py" amqp --queues 120,1000 --per 1000,100 --prefetch 64 \
        --rounds "$rounds" --fairway "$bin" --csv "$csv"
fi
fi
gnuplot <<PLOT
set datafile separator ","
set terminal pngcairo size 1100,520 font ",10"
set output "docs/images/start-scale.png"
set multiplot layout 1,2 title "fairway run from process start, 2 workers, 2-core VM (release build)"
set logscale x
set xlabel "queues"
set key below
set grid
set title "seconds from process start"
set ylabel "seconds"
plot "< grep '^sqlite' $csv" using 2:4 with linespoints title "SQLite: first job", \
     "< grep '^sqlite' $csv" using 2:6 with linespoints title "SQLite: all done", \
     "< grep '^sqlite' $csv" using 2:8 with linespoints dashtype 2 title "SQLite: raw C loop, all done", \
     "< grep '^amqp' $csv" using 2:4 with linespoints title "RabbitMQ: first job", \
     "< grep '^amqp' $csv" using 2:6 with linespoints title "RabbitMQ: all done", \
     "< grep '^amqp' $csv" using 2:8 with linespoints dashtype 2 title "RabbitMQ: raw rabbitmq-c loop, all done"
set title "resident memory"
set ylabel "MB"
set yrange [0:*]
plot "< grep '^sqlite' $csv" using 2:11 with linespoints title "SQLite: idle (no jobs)", \
     "< grep '^sqlite' $csv" using 2:9 with linespoints title "SQLite: peak during the drain", \
     "< grep '^amqp' $csv" using 2:11 with linespoints title "RabbitMQ: idle (no jobs)", \
     "< grep '^amqp' $csv" using 2:9 with linespoints title "RabbitMQ: peak during the drain"
unset multiplot
PLOT
echo "wrote $csv and docs/images/start-scale.png"
