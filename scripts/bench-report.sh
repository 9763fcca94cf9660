#!/usr/bin/env bash
# Every comparison of the project in one run, written as a Markdown report with SVG
# bar charts, stamped with the machine, the commit and the date.
#
# Usage: scripts/bench-report.sh [--short|--full] [--out DIR]
#
#   --short  (default) a few brief rounds, about two minutes of measuring: a quick
#            look, and a check that the tooling works
#   --full   the figures the README shows, about fifteen minutes of measuring
#   --out    where to write (default benches/results): results.tsv (every figure),
#            REPORT.md and one SVG chart per table, drawn by scripts/bench-report.py
#
# Comparisons, in this order, each interleaving its variants in rounds so that drift
# in the machine's load hits them alike (see benches/README.md):
#   1. in-memory decisions against governor (benches/benches/compare.rs), and bytes
#      per key at 1,000,000 keys (benches/benches/memory.rs);
#   2. HTTP: axum and actix-web, bare, with limiter and with governor's middleware,
#      driven by wrk (scripts/bench-http.sh);
#   3. Redis against redis-benchmark running the same scripts
#      (storage-redis/benches/throughput.rs);
#   4. Memcached against raw meta increments (storage-memcached/benches/throughput.rs).
#
# It installs what is missing (wrk, Redis, Memcached; Debian packages), builds every
# bench in release mode first (not counted in the times above), and starts the
# servers of scripts/services on their fixed loopback ports, which must be free; all
# are stopped when it exits. Never part of scripts/test.sh: figures are not tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mode=short
out=benches/results
while [ $# -gt 0 ]; do
  case $1 in
    --short) mode=short ;;
    --full) mode=full ;;
    --out) out=${2:?--out needs a folder}; shift ;;
    *) echo "usage: scripts/bench-report.sh [--short|--full] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$mode" = full ]; then
  memory_args=(--rounds 15 --millis 200)
  http_rounds=5 http_seconds=5
  redis_secs=1.5 redis_rounds=3
  memcached_secs=2 memcached_rounds=3
else
  memory_args=(--rounds 3 --millis 60)
  http_rounds=2 http_seconds=2
  redis_secs=0.15 redis_rounds=1
  memcached_secs=0.2 memcached_rounds=2
fi

need_command python3 python3
need_command wrk wrk

step "build every bench (release)"
cargo build --quiet --release --locked -p limiter-bench-http
cargo bench --quiet --no-run --locked -p limiter-benches --bench compare --bench memory 2>/dev/null
cargo bench --quiet --no-run --locked -p limiter-redis --bench throughput 2>/dev/null
cargo bench --quiet --no-run --locked -p limiter-memcached --bench throughput 2>/dev/null

mkdir -p "$out"
results="$out/results.tsv"
: >"$results"
export LIMITER_BENCH_RESULTS
LIMITER_BENCH_RESULTS=$(cd "$out" && pwd)/results.tsv
stamp() { printf 'stamp\t%s\t%s\n' "$1" "$2" >>"$results"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
stamp mode "$mode"
stamp cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
stamp cores "$(nproc)"
stamp memory "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
stamp kernel "$(uname -sr)"
stamp rustc "$(rustc --version)"
stamp commit "$commit"
stamp date "$(date -u '+%Y-%m-%d %H:%M UTC')"
started=$SECONDS
load_start=$(load)

step "in-memory storage against governor"
cargo bench --quiet --locked -p limiter-benches --bench compare -- "${memory_args[@]}"
step "bytes per key, 1,000,000 keys"
printf 'table\tmemory-bytes\tIn-memory storage: bytes per key at 1,000,000 keys (lower is better)\tbytes\trow=governor\tlower\t%s\n' \
  "growth of the resident set while the keys are stored, one hit each (glibc's allocator)" >>"$results"
cargo bench --quiet --locked -p limiter-benches --bench memory | tee /dev/stderr |
  awk '$1 ~ /^memory\// && $3 == "bytes" {sub("memory/", "", $1); printf "value\tmemory-bytes\t%s\tbytes per key\t%s\n", $1, $2}' >>"$results"

step "HTTP"
bash scripts/bench-http.sh "$http_rounds" "$http_seconds"

step "start Redis and Memcached"
source scripts/services/redis.sh
source scripts/services/memcached.sh
stamp redis "$(redis-server --version | awk '{print $3}' | sed 's/^v=//')"
stamp memcached "$(memcached -V | awk '{print $2}')"
stamp wrk "$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')"

step "Redis"
LIMITER_BENCH_SECS=$redis_secs LIMITER_BENCH_ROUNDS=$redis_rounds \
  cargo bench --quiet --locked -p limiter-redis --bench throughput

step "Memcached"
LIMITER_BENCH_SECS=$memcached_secs LIMITER_BENCH_ROUNDS=$memcached_rounds \
  cargo bench --quiet --locked -p limiter-memcached --bench throughput

stamp load "$load_start → $(load)"
stamp duration "$(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
python3 scripts/bench-report.py "$out"
step "wrote $out/REPORT.md"
