#!/usr/bin/env bash
# Instructions per in-memory hit, from callgrind: stable under machine noise, unlike
# timings. For each case, two runs that differ only in the number of hits; the
# difference of their instruction counts over the difference of hits is the cost of
# one hit, setup excluded.
#
#   scripts/instructions.sh [CASE...]    (CASE: strategy:keys, e.g. gcra:1 governor:100000)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --quiet --release -p limiter-benches --example hot_path
bin=target/release/examples/hot_path

cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  for keys in 1 100000; do
    for s in governor fixed_window moving_window sliding_window gcra; do
      cases+=("$s:$keys")
    done
  done
fi

small=200000
large=400000
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 |
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
printf '%-16s %8s %14s\n' case keys instr/hit
for case in "${cases[@]}"; do
  s=${case%%:*}
  keys=${case##*:}
  a=$(count "$s" "$keys" "$small")
  b=$(count "$s" "$keys" "$large")
  printf '%-16s %8s %14.1f\n' "$s" "$keys" "$(echo "($b - $a) / ($large - $small)" | bc -l)"
done
