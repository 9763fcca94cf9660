# Helpers shared by scripts/test.sh and the service scripts in scripts/services/.
# Sourced, not run.

step() { printf '\n==> %s\n' "$*"; }

# Commands run when the calling script exits, last registered first.
__on_exit=()
on_exit() { __on_exit=("$*" "${__on_exit[@]}"); }
__run_on_exit() {
  local cmd
  for cmd in "${__on_exit[@]}"; do eval "$cmd" || true; done
}
trap __run_on_exit EXIT

# Installs Debian packages whose commands are missing: need_command CMD PACKAGE.
__apt_updated=0
need_command() {
  local cmd=$1 package=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $cmd is missing and apt-get is not available to install $package" >&2
    return 1
  fi
  if [ "$__apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null
    __apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || { echo "error: installing $package did not provide $cmd" >&2; return 1; }
}

# Waits until a TCP port on 127.0.0.1 accepts connections: wait_port PORT [SECONDS].
wait_port() {
  local port=$1 deadline=$((SECONDS + ${2:-20}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: nothing listens on 127.0.0.1:$port" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Fails unless nothing listens on these 127.0.0.1 ports: a server left over from
# another run would otherwise answer the tests, and stop under them.
ports_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "error: 127.0.0.1:$port is already in use; stop what listens there and run again" >&2
      return 1
    fi
  done
}

# Makes a temporary folder, removed when the calling script exits, and stores its
# path in the variable named by the argument: temp_dir VAR. (Not `$(temp_dir)`: a
# command substitution runs in a subshell, where the clean-up would be lost.)
temp_dir() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/limiter-test.XXXXXX")
  on_exit "rm -rf '$dir'"
  printf -v "$1" '%s' "$dir"
}
