#!/usr/bin/env bash
# Soak: run the real room server, put CLIENTS members on it pushing i_moved at RATE Hz for
# DURATION with roomload, and print one JSON line: the server's goroutines and RSS at the
# start, at the peak and after the clients have gone, and what roomload saw (rates, latency,
# errors = protocol errors, refusals and dropped connections).
#   make soak                     (500 clients, 60 s, 20 Hz)
#   CLIENTS=100 DURATION=10s make soak
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-500}
DURATION=${DURATION:-60s}
RATE=${RATE:-20}
PORT=${PORT:-4123}
BIN=${BIN:-bin}

mkdir -p "$BIN"
CGO_ENABLED=0 go build -trimpath -o "$BIN/roomserver" ./cmd/roomserver
go build -o "$BIN/roomload" ./cmd/roomload

# Every client comes from 127.0.0.1: lift the per-address connection limit (roomload would
# otherwise retry through it, slowly). Other limits stay at their defaults.
"$BIN/roomserver" --room soak --listen "127.0.0.1:$PORT" --max-connects-per-second 0 --log-level warn &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.1
done

# metrics prints {"goroutines":N,"rss_mb":M,"slow_disconnects":S,"refusals":R}.
metrics() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk '
    /^go_goroutines /{g=$2}
    /^process_resident_memory_bytes /{r=$2}
    /^xrooms_room_slow_member_disconnects_total/{s+=$2}
    /^xrooms_room_limit_refusals_total/{f+=$2}
    END{printf "{\"goroutines\":%d,\"rss_mb\":%.1f,\"slow_disconnects\":%d,\"refusals\":%d}", g, r/1e6, s, f}'
}
start=$(metrics)
peak_g=0; peak=$start
( while sleep 5; do metrics; echo; done ) > "$BIN/soak-samples.jsonl" 2>/dev/null &
sampler=$!
load=$("$BIN/roomload" --url "ws://127.0.0.1:$PORT/socket" --room soak --clients "$CLIENTS" --rate "$RATE" \
  --duration "$DURATION" --pid "$pid")
kill "$sampler" 2>/dev/null || true
# The sample with the most goroutines.
while read -r s; do
  g=$(echo "$s" | sed 's/.*"goroutines":\([0-9]*\).*/\1/')
  if [ -n "$g" ] && [ "$g" -gt "$peak_g" ]; then peak_g=$g; peak=$s; fi
done < "$BIN/soak-samples.jsonl"
sleep 3 # the clients' sockets close
end=$(metrics)
kill -TERM "$pid"
wait "$pid"
trap - EXIT
echo "{\"clients\":$CLIENTS,\"duration\":\"$DURATION\",\"rate_hz\":$RATE,\"server_start\":$start,\"server_peak\":$peak,\"server_end\":$end,\"load\":$load}"
