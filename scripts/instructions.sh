#!/usr/bin/env bash
# Instructions per in-memory hit, from callgrind: stable under machine noise, unlike
# timings. Only the timed loop of the hot_path example is counted (setup, key
# creation and clock calibration excluded), divided by its number of hits.
#
#   scripts/instructions.sh [CASE...]    (CASE: strategy:keys, e.g. gcra:1 governor:100000;
#                                         or http:VARIANT:CLIENTS, e.g. http:limiter:1, for
#                                         instructions per request through bare axum, the
#                                         layer or tower_governor, in process)
#   HOT_PATH_BIN=path/to/hot_path scripts/instructions.sh   (count another build)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
# HOT_PATH_BIN: a hot_path binary built elsewhere (another revision) to count instead.
bin=${HOT_PATH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --release -p limiter-benches --example hot_path
  bin=target/release/examples/hot_path
fi

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  for keys in 1 100000; do
    for s in governor gcra_keyed fixed_window moving_window sliding_window gcra; do
      cases+=("$s:$keys")
    done
  done
fi

hits=200000
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
    --toggle-collect='hot_path::timed' "$bin" "$1" "$2" "$3" 2>&1 |
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
# Instructions per request of the request_path example: only its timed requests are
# counted (setup, the first request of each client and clock calibration excluded).
requests=50000
count_http() {
  local total
  total=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
    --toggle-collect='request_path::timed' "$request_bin" "$1" "$2" "$requests" 2>&1 |
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
  echo "$total / $requests" | bc -l
}
request_bin=""
printf '%-16s %8s %14s\n' case keys instr/hit
for case in "${cases[@]}"; do
  if [[ $case == http:* ]]; then
    if [ -z "$request_bin" ]; then
      cargo build --quiet --release -p limiter-bench-http --example request_path
      request_bin=target/release/examples/request_path
    fi
    rest=${case#http:}
    printf '%-16s %8s %14.1f\n' "http:${rest%%:*}" "${rest##*:}" "$(count_http "${rest%%:*}" "${rest##*:}")"
    continue
  fi
  s=${case%%:*}
  keys=${case##*:}
  n=$(count "$s" "$keys" "$hits")
  printf '%-16s %8s %14.1f\n' "$s" "$keys" "$(echo "$n / $hits" | bc -l)"
done
