# Starts the Redis servers the limiter-redis tests and bench need, on loopback ports,
# with their data in a temporary folder; all are stopped when the calling shell exits.
#
# Sourced by scripts/test.sh. To run the Redis tests by hand:
#
#   source scripts/services/redis.sh
#   cargo test -p limiter-redis --all-features
#
# Exports:
#   LIMITER_REDIS_URL           standalone server        redis://127.0.0.1:16379
#   LIMITER_REDIS_UNIX_URL      the same, by Unix socket redis+unix://…/redis.sock
#   LIMITER_REDIS_CLUSTER_URL   three-primary Cluster    redis+cluster://127.0.0.1:17000,…
#   LIMITER_REDIS_SENTINEL_URL  primary + replica, one sentinel  redis+sentinel://127.0.0.1:26380/limiter-primary
#   LIMITER_REDIS_TLS_URL       TLS-only server          rediss://127.0.0.1:16390?tls_ca_file=…
#   LIMITER_REDIS_TLS_CA        the CA certificate (PEM) the TLS server's certificate is signed with

if ! declare -F on_exit >/dev/null; then
  # shellcheck source=../lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
fi

need_command redis-server redis-server
need_command redis-cli redis-tools
need_command redis-sentinel redis-sentinel
need_command openssl openssl

ports_free 16379 16380 16381 16390 16395 16396 16397 16398 17000 17001 17002 26380
# First, so that its clean-up runs last, after every server has stopped.
temp_dir __redis_dir

# Starts one redis-server daemon in its own folder: __redis_start NAME ARGS...
__redis_start() {
  local name=$1
  shift
  local dir="$__redis_dir/$name"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --save "" --appendonly no "$@"
  on_exit "__redis_stop '$dir'"
}

# Stops the daemon whose folder is $1, waiting for it to exit.
__redis_stop() {
  local pid
  pid=$(cat "$1/redis.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# Waits until `redis-cli ARGS...` prints a line containing TEXT: __redis_wait_for TEXT ARGS...
__redis_wait_for() {
  local text=$1 deadline=$((SECONDS + 30))
  shift
  until redis-cli "$@" 2>/dev/null | grep -q "$text"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: redis-cli $* never showed $text" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Standalone, also on a Unix socket.
__redis_start standalone --port 16379 --unixsocket "$__redis_dir/standalone/redis.sock" --unixsocketperm 700
wait_port 16379
export LIMITER_REDIS_URL="redis://127.0.0.1:16379"
export LIMITER_REDIS_UNIX_URL="redis+unix://$__redis_dir/standalone/redis.sock"

# Cluster: three primaries, no replicas.
for port in 17000 17001 17002; do
  __redis_start "cluster-$port" --port "$port" --cluster-enabled yes \
    --cluster-config-file "$__redis_dir/cluster-$port/nodes.conf" --cluster-node-timeout 5000
done
for port in 17000 17001 17002; do wait_port "$port"; done
redis-cli --cluster create 127.0.0.1:17000 127.0.0.1:17001 127.0.0.1:17002 \
  --cluster-replicas 0 --cluster-yes >"$__redis_dir/cluster-create.log"
for port in 17000 17001 17002; do
  __redis_wait_for "cluster_state:ok" -p "$port" cluster info
done
export LIMITER_REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:17000,127.0.0.1:17001,127.0.0.1:17002"

# Sentinel: a primary, one replica, one sentinel watching them.
__redis_start sentinel-primary --port 16380
__redis_start sentinel-replica --port 16381 --replicaof 127.0.0.1 16380
wait_port 16380
wait_port 16381
mkdir -p "$__redis_dir/sentinel"
cat >"$__redis_dir/sentinel/sentinel.conf" <<EOF
port 26380
bind 127.0.0.1
daemonize yes
pidfile $__redis_dir/sentinel/redis.pid
logfile $__redis_dir/sentinel/redis.log
dir $__redis_dir/sentinel
sentinel monitor limiter-primary 127.0.0.1 16380 1
sentinel down-after-milliseconds limiter-primary 5000
sentinel failover-timeout limiter-primary 10000
EOF
redis-sentinel "$__redis_dir/sentinel/sentinel.conf"
on_exit "__redis_stop '$__redis_dir/sentinel'"
wait_port 26380
__redis_wait_for "16380" -p 26380 sentinel get-master-addr-by-name limiter-primary
__redis_wait_for "master_link_status:up" -p 16381 info replication
export LIMITER_REDIS_SENTINEL_URL="redis+sentinel://127.0.0.1:26380/limiter-primary"

# TLS: a self-signed CA and a server certificate for 127.0.0.1 and localhost.
__redis_tls="$__redis_dir/tls"
mkdir -p "$__redis_tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=limiter test CA" \
  -keyout "$__redis_tls/ca.key" -out "$__redis_tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$__redis_tls/server.key" -out "$__redis_tls/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  >"$__redis_tls/server.ext"
openssl x509 -req -in "$__redis_tls/server.csr" -CA "$__redis_tls/ca.pem" -CAkey "$__redis_tls/ca.key" \
  -CAcreateserial -days 2 -extfile "$__redis_tls/server.ext" -out "$__redis_tls/server.pem" 2>/dev/null
__redis_start tls --port 0 --tls-port 16390 --tls-cert-file "$__redis_tls/server.pem" \
  --tls-key-file "$__redis_tls/server.key" --tls-ca-cert-file "$__redis_tls/ca.pem" --tls-auth-clients no
wait_port 16390
export LIMITER_REDIS_TLS_CA="$__redis_tls/ca.pem"
export LIMITER_REDIS_TLS_URL="rediss://127.0.0.1:16390?tls_ca_file=$__redis_tls/ca.pem"

echo "redis: standalone $LIMITER_REDIS_URL, cluster 17000-17002, sentinel 26380, tls 16390"
