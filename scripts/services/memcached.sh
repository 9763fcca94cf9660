# Starts two Memcached servers on loopback for the limiter-memcached tests, stopped
# when the sourcing script exits. Sourced by scripts/test.sh (after scripts/lib.sh);
# to run the crate's tests by hand in a shell of your own:
#
#   source scripts/lib.sh && source scripts/services/memcached.sh
#   cargo test -p limiter-memcached
#
# Exports LIMITER_MEMCACHED_URL (the first server) and LIMITER_MEMCACHED_PAIR_URL
# (both). The failover tests start servers of their own on other ports, with the
# binary named by LIMITER_MEMCACHED_BIN.

need_command memcached memcached

__memcached_start() {
  local port=$1 pid
  # -u: memcached refuses to run as root unless told which user to be.
  # -l: loopback only. -m: 64 MiB is plenty for the tests. -c: room for the
  # concurrency tests' pools.
  memcached -u nobody -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 4096 -t 2 &
  pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  wait_port "$port"
}

LIMITER_MEMCACHED_PORT_A=${LIMITER_MEMCACHED_PORT_A:-21211}
LIMITER_MEMCACHED_PORT_B=${LIMITER_MEMCACHED_PORT_B:-21212}
__memcached_start "$LIMITER_MEMCACHED_PORT_A"
__memcached_start "$LIMITER_MEMCACHED_PORT_B"

export LIMITER_MEMCACHED_URL="memcached://127.0.0.1:$LIMITER_MEMCACHED_PORT_A"
export LIMITER_MEMCACHED_PAIR_URL="memcached://127.0.0.1:$LIMITER_MEMCACHED_PORT_A,127.0.0.1:$LIMITER_MEMCACHED_PORT_B"
LIMITER_MEMCACHED_BIN=$(command -v memcached)
export LIMITER_MEMCACHED_BIN
echo "memcached on 127.0.0.1:$LIMITER_MEMCACHED_PORT_A and :$LIMITER_MEMCACHED_PORT_B"
