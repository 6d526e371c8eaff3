#!/usr/bin/env bash
# The cost of the sync before each 200: the release runner with --sync data (the default) and
# --sync none side by side, rounds alternated, wrk GET / at 1/16/64 connections for 5 s, each
# on a fresh data dir under /var/tmp (a disk, not tmpfs). JSON lines on stdout.
# Needs: cargo build --release -p app-wasm-host --bin app-wasm; the component; wrk.
set -u
cd "$(dirname "$0")/.."
BIN=target/release/app-wasm; WASM=target/wasm32-wasip2/release/app_wasm.wasm
for round in ${ROUNDS:-1 2 3}; do
 for mode in data none; do
  d=$(mktemp -d -p /var/tmp)
  $BIN up --quiet --listen 127.0.0.1:0 --data "$d" --wasm $WASM --sync $mode >/dev/null 2>&1 &
  pid=$!
  # The runner writes its URL to replicas.json once it serves.
  until [ -s "$d/replicas.json" ]; do sleep 0.1; done
  url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["replicas"][0]["url"])' "$d/replicas.json")
  wrk -t2 -c16 -d1s $url/ >/dev/null
  for c in 1 16 64; do
   t=$(( c < 2 ? c : 2 ))
   r=$(wrk -t$t -c$c -d5s -s bench/wrk-report.lua $url/ | grep '^{')
   echo "{\"mode\":\"$mode\",\"round\":$round,\"c\":$c,\"r\":$r}"
  done
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
 done
done
