#!/usr/bin/env bash
# HTTP throughput: a hello-world service on axum and on actix-web, each bare, behind
# limiter (in-memory storage) and behind governor's middleware for that framework
# (tower_governor, actix-governor), driven by wrk on loopback.
#
# Usage: bash scripts/bench-http.sh [ROUNDS] [SECONDS] [VARIANT...]
#   defaults: 5 rounds of 5 s, every variant of benches/http-server
#   (bare limiter governor actix-bare actix-limiter actix-governor)
#   LIMITER_BENCH_RESULTS=FILE also appends the medians to FILE for
#   scripts/bench-report.py (scripts/bench-report.sh sets it).
#   LIMITER_BENCH_HEADERS=browser sends twelve headers a browser sends (user agent,
#   accept, cookies...) with every request, instead of wrk's Host line alone.
#
# Each server runs on one thread pinned to CPU 0, and wrk on one thread with 32
# connections pinned to CPU 1 (where taskset exists). The variants alternate within
# each round, starting one further each round, so drift in the machine's load hits
# them all alike. The table reports the median requests per second of each and its
# ratio to the bare service of its framework, and the median CPU time the server
# spent per request (read from /proc), which other work on the machine disturbs much
# less than throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

rounds=${1:-5}
seconds=${2:-5}
shift $(($# < 2 ? $# : 2))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(bare limiter governor actix-bare actix-limiter actix-governor)
need_command wrk wrk
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  on_server=(taskset -c 0)
  on_client=(taskset -c 1)
else
  on_server=()
  on_client=()
fi

headers=()
case ${LIMITER_BENCH_HEADERS:-} in
  "") ;;
  browser)
    headers=(
      -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
      -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
      -H "Accept-Language: en-US,en;q=0.5" -H "Accept-Encoding: gzip, deflate, br"
      -H "Connection: keep-alive" -H "Upgrade-Insecure-Requests: 1"
      -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Site: none"
      -H "Sec-Fetch-User: ?1" -H "Cache-Control: max-age=0"
      -H "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; lang=en"
    )
    ;;
  *) echo "error: LIMITER_BENCH_HEADERS is 'browser' or unset" >&2; exit 2 ;;
esac

step "build the bench servers (release)"
cargo build --quiet --release --locked -p limiter-bench-http
server=${CARGO_TARGET_DIR:-target}/release/limiter-bench-http

declare -A port=([bare]=18081 [limiter]=18082 [governor]=18083
  [actix-bare]=18084 [actix-limiter]=18085 [actix-governor]=18086)
declare -A name=([bare]="axum, bare" [limiter]="axum + limiter (memory)"
  [governor]="axum + tower_governor" [actix-bare]="actix-web, bare"
  [actix-limiter]="actix-web + limiter (memory)" [actix-governor]="actix-web + actix-governor")
declare -A pid
for v in "${variants[@]}"; do
  [ -n "${port[$v]:-}" ] || { echo "error: unknown variant $v" >&2; exit 1; }
  ports_free "${port[$v]}"
done
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
  "${on_client[@]}" wrk -t1 -c32 -d1s "${headers[@]}" "http://127.0.0.1:${port[$v]}/" >/dev/null
  non2xx=$(wrk -t1 -c4 -d1s "${headers[@]}" "http://127.0.0.1:${port[$v]}/" | awk '/Non-2xx/ {print $NF}')
  if [ -n "$non2xx" ]; then
    echo "error: $v answered non-2xx responses; the bench must measure the allowed path" >&2
    exit 1
  fi
done

n=${#variants[@]}
declare -A results cpu
for round in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    v=${variants[$(((round + i) % n))]}
    before=$(cpu_ticks "${pid[$v]}")
    out=$("${on_client[@]}" wrk -t1 -c32 -d"${seconds}s" "${headers[@]}" "http://127.0.0.1:${port[$v]}/")
    after=$(cpu_ticks "${pid[$v]}")
    if grep -q 'Non-2xx' <<<"$out"; then
      echo "error: $v answered non-2xx responses; the bench must measure the allowed path" >&2
      exit 1
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    cpu[$v]="${cpu[$v]:-} $us"
    results[$v]="${results[$v]:-} $rps"
    printf 'round %d  %-15s %12s req/s %8s µs CPU/request\n' "$round" "$v" "$rps" "$us"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

out=${LIMITER_BENCH_RESULTS:-/dev/null}
note="wrk, 1 thread, 32 connections, $seconds s per run; server on one thread; medians of $rounds interleaved rounds"
for framework in axum actix-web; do
  printf 'table\thttp-%s\tHTTP on %s: requests per second (higher is better)\treq/s\trow=%s, bare\thigher\t%s\n' \
    "$framework" "$framework" "$framework" "$note" >>"$out"
  printf 'table\thttp-%s-cpu\tHTTP on %s: server CPU time per request (lower is better)\tµs\trow=%s, bare\tlower\t%s\n' \
    "$framework" "$framework" "$framework" "user + system time of the server process, from /proc" >>"$out"
done

step "medians of $rounds rounds, $seconds s each"
printf '| %-30s | %12s | %8s | %16s |\n' "service" "requests/s" "vs bare" "server CPU/request"
printf "|%s|%s|%s|%s|\n" "--------------------------------" "--------------" "----------" "--------------------"
for v in "${variants[@]}"; do
  case $v in actix-*) framework=actix-web bare=actix-bare ;; *) framework=axum bare=bare ;; esac
  m=$(echo "${results[$v]}" | median)
  c=$(echo "${cpu[$v]}" | median)
  b=$(echo "${results[$bare]:-}" | median)
  ratio=$(awk -v a="$m" -v b="${b:-0}" 'BEGIN {if (b > 0) printf "%.1f%%", 100*a/b; else print "-"}')
  printf '| %-30s | %12.0f | %8s | %13.2f µs |\n' "${name[$v]}" "$m" "$ratio" "$c"
  printf 'value\thttp-%s\t%s\trequests/s\t%s\n' "$framework" "${name[$v]}" "$m" >>"$out"
  printf 'value\thttp-%s-cpu\t%s\tCPU per request\t%s\n' "$framework" "${name[$v]}" "$c" >>"$out"
done
