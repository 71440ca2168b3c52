#!/bin/bash
# clients/bench/idle/w1_ab.sh: one W1 run (1 -> 1, autoack, 64 B, 5 s, --drain) against a fresh
# broker from BINARY; prints LABEL, the broker's CPU seconds over the run (utime + stime) and
# warren-perf's RESULT line. Alternate two binaries for an A/B:
#   for i in 1 2 3; do w1_ab.sh /tmp/warren-old old; w1_ab.sh build/warren new; done
set -eu
binary=$1 label=$2
perf=${WARREN_PERF:-$(dirname "$0")/../../../build/warren-perf}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
data=$(mktemp -d /tmp/w1-ab.XXXXXX)
"$binary" --bind 127.0.0.1 --port "$port" --data-dir "$data" --log-level warning \
    --management_port 0 --prometheus_port 0 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' /proc/"$pid"/stat; }
before=$(ticks)
result=$("$perf" --uri "amqp://guest:guest@127.0.0.1:$port/" --size 64 --autoack --time 5 --drain | grep RESULT)
after=$(ticks)
kill "$pid"
wait "$pid" || true
rm -rf "$data"
echo "$label cpu_s=$(echo "scale=2; ($after - $before) / $(getconf CLK_TCK)" | bc) $result"
