#!/usr/bin/env bash
# HTTP throughput: a bare axum hello-world, the same behind limiter's layer (in-memory
# storage), and the same behind tower_governor, driven by wrk on loopback.
#
# Usage: bash scripts/bench-http.sh [ROUNDS] [SECONDS]   (defaults: 5 rounds of 5 s)
#
# Each server runs on one tokio worker thread pinned to CPU 0, and wrk on one thread
# with 32 connections pinned to CPU 1 (where taskset exists). The variants alternate
# within each round, starting one further each round, so drift in the machine's load
# hits all three alike. The table reports the median requests per second of each and
# its ratio to bare axum, and the median CPU time the server spent per request (read
# from /proc), which other work on the machine disturbs much less than throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

rounds=${1:-5}
seconds=${2:-5}
need_command wrk wrk
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  on_server=(taskset -c 0)
  on_client=(taskset -c 1)
else
  on_server=()
  on_client=()
fi

step "build the bench servers (release)"
cargo build --quiet --release --locked -p limiter-bench-http
server=target/release/limiter-bench-http

variants=(bare limiter governor)
declare -A port=([bare]=18081 [limiter]=18082 [governor]=18083)
declare -A pid
# CPU time of a process so far, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
for v in "${variants[@]}"; do
  "${on_server[@]}" "$server" "$v" "127.0.0.1:${port[$v]}" &
  pid[$v]=$!
  on_exit "kill $! 2>/dev/null"
done
for v in "${variants[@]}"; do wait_port "${port[$v]}"; done

step "warm up"
for v in "${variants[@]}"; do
  "${on_client[@]}" wrk -t1 -c32 -d1s "http://127.0.0.1:${port[$v]}/" >/dev/null
done

declare -A results cpu
for round in $(seq 1 "$rounds"); do
  for i in 0 1 2; do
    v=${variants[$(((round + i) % 3))]}
    before=$(cpu_ticks "${pid[$v]}")
    out=$("${on_client[@]}" wrk -t1 -c32 -d"${seconds}s" "http://127.0.0.1:${port[$v]}/")
    after=$(cpu_ticks "${pid[$v]}")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    cpu[$v]="${cpu[$v]:-} $us"
    non2xx=$(wrk -t1 -c4 -d1s "http://127.0.0.1:${port[$v]}/" | awk '/Non-2xx/ {print $NF}')
    if [ -n "$non2xx" ]; then
      echo "error: $v answered non-2xx responses; the bench must measure the allowed path" >&2
      exit 1
    fi
    results[$v]="${results[$v]:-} $rps"
    printf 'round %d  %-9s %12s req/s %8s µs CPU/request\n' "$round" "$v" "$rps" "$us"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

step "medians of $rounds rounds, $seconds s each"
bare=$(echo "${results[bare]}" | median)
printf '| %-28s | %12s | %8s | %16s |\n' "service" "requests/s" "vs bare" "server CPU/request"
printf "|%s|%s|%s|%s|\n" "------------------------------" "--------------" "----------" "--------------------"
for v in "${variants[@]}"; do
  m=$(echo "${results[$v]}" | median)
  case $v in
    bare) name="axum, bare" ;;
    limiter) name="axum + limiter (memory)" ;;
    governor) name="axum + tower_governor" ;;
  esac
  c=$(echo "${cpu[$v]}" | median)
  printf '| %-28s | %12.0f | %7.1f%% | %13.2f µs |\n' "$name" "$m" "$(awk -v a="$m" -v b="$bare" 'BEGIN {print 100*a/b}')" "$c"
done
