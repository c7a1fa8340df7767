#!/usr/bin/env bash
# Run the production recipe (deploy/supervisord.conf) in the foreground.
#   DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS: as for any deployment
#   REALTIME_BIND        address:port Daphne listens on          (127.0.0.1:8000)
#   DAPHNE_PROCESSES     Daphne processes sharing that socket     (2)
#   SUPERVISE_REDIS      also run redis-server here (true/false)  (false)
#   REALTIME_RUN_DIR     logs, pid file, supervisor socket        (.data/run)
#   REALTIME_ENV_FILE    a settings file to read                  (none)
#   REALTIME_MIN_FDS     open files each process may hold         (65536; see below)
#   SUPERVISE_PUSHPIN    also run Pushpin here, in front (true/false)  (false)
#   PUSHPIN_PORT         address:port Pushpin's clients connect to     (0.0.0.0:7999)
#   PUSHPIN_PORT_OFFSET  added to Pushpin's internal ports 5560-5563   (0)
#   PUSHPIN_KEY          Pushpin's signing key (sig_key); required with SUPERVISE_PUSHPIN
#   GRIP_URL             every Pushpin's publish endpoint, space-separated (this
#                        machine's own with SUPERVISE_PUSHPIN, docs/how-to/deploy.md)
# supervisorctl -c deploy/supervisord.conf status   (with the same environment) controls it.
set -euo pipefail
app_dir="$(cd "$(dirname "$0")/.." && pwd)"
export REALTIME_APP_DIR="$app_dir"
export REALTIME_VENV="${REALTIME_VENV:-${VIRTUAL_ENV:-$app_dir/.venv}}"
export REALTIME_BIND="${REALTIME_BIND:-127.0.0.1:8000}"
export DAPHNE_PROCESSES="${DAPHNE_PROCESSES:-2}"
export SUPERVISE_REDIS="${SUPERVISE_REDIS:-false}"
export SUPERVISED_REDIS_PORT="${SUPERVISED_REDIS_PORT:-6379}"
export REALTIME_RUN_DIR="${REALTIME_RUN_DIR:-$app_dir/.data/run}"
# A deployment is set by its environment, not by a .env that `make run` left in the checkout
# (DJANGO_DEBUG=1); REALTIME_ENV_FILE=/path/to/file names one on purpose.
export REALTIME_ENV_FILE="${REALTIME_ENV_FILE-}"
: "${REDIS_URL:?REDIS_URL must be set: several processes share the channel layer through Redis}"
: "${DATABASE_URL:?DATABASE_URL must be set}"
mkdir -p "$REALTIME_RUN_DIR"

# Every client connection is a file descriptor: Pushpin holds one per SSE client, Daphne one
# per WebSocket (and per stream it serves itself). supervisord raises its limit to this and
# its processes inherit it; only up to the hard limit, which only a process with
# CAP_SYS_RESOURCE may raise (a container often has none, root or not).
export REALTIME_MIN_FDS="${REALTIME_MIN_FDS:-65536}"
hard_fds="$(ulimit -Hn)"
if [ "$hard_fds" != unlimited ] && [ "$hard_fds" -lt "$REALTIME_MIN_FDS" ]; then
  echo "run.sh: the hard limit of open files is $hard_fds, below REALTIME_MIN_FDS=$REALTIME_MIN_FDS;" \
    "using $hard_fds (raise it in /etc/security/limits.conf or the service's LimitNOFILE)" >&2
  REALTIME_MIN_FDS="$hard_fds"
fi

# Pushpin (deploy/pushpin/pushpin.conf) made this machine's own: its ports, run and log
# directories, key, and the route to this machine's Daphne processes.
export SUPERVISE_PUSHPIN="${SUPERVISE_PUSHPIN:-false}"
export PUSHPIN_CONFIG="$REALTIME_RUN_DIR/pushpin/pushpin.conf"
if [ "$SUPERVISE_PUSHPIN" = true ]; then
  : "${PUSHPIN_KEY:?PUSHPIN_KEY must be set with SUPERVISE_PUSHPIN=true (Pushpin signs its requests with it)}"
  pushpin_port="${PUSHPIN_PORT:-0.0.0.0:7999}"
  pushpin_offset="${PUSHPIN_PORT_OFFSET:-0}"
  upstream="${REALTIME_BIND/#0.0.0.0:/127.0.0.1:}"
  # Pushpin's processes talk over Unix sockets in its rundir, whose paths may not exceed
  # 107 bytes: a short directory of this run directory's own, not one under it.
  pushpin_rundir="${TMPDIR:-/tmp}/pushpin-$(printf %s "$REALTIME_RUN_DIR" | sha1sum | cut -c1-12)"
  mkdir -p "$pushpin_rundir" "$REALTIME_RUN_DIR/pushpin/log"
  sed -e "s|^rundir=.*|rundir=$pushpin_rundir|" \
    -e "s|^logdir=.*|logdir=$REALTIME_RUN_DIR/pushpin/log|" \
    -e "s|^port_offset=.*|port_offset=$pushpin_offset|" \
    -e "s|^http_port=.*|http_port=${pushpin_port##*:}|" \
    -e "s|^sig_key=.*|sig_key=$PUSHPIN_KEY|" \
    "$app_dir/deploy/pushpin/pushpin.conf" >"$PUSHPIN_CONFIG"
  if [ "${pushpin_port%:*}" != "$pushpin_port" ]; then
    # http_port takes no address: Pushpin's own --port does.
    export PUSHPIN_ARGS="--port $pushpin_port"
  fi
  echo "* $upstream" >"$REALTIME_RUN_DIR/pushpin/routes"
  export GRIP_URL="${GRIP_URL:-http://127.0.0.1:$((5561 + pushpin_offset))?iss=pushpin&key=$PUSHPIN_KEY}"
fi
export PUSHPIN_ARGS="${PUSHPIN_ARGS-}"
# Metrics of every process are summed by /metrics; the directory must start empty.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$REALTIME_RUN_DIR/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec "$REALTIME_VENV/bin/supervisord" -c "$app_dir/deploy/supervisord.conf" --minfds "$REALTIME_MIN_FDS"
