#!/usr/bin/env bash
# Run the production recipe (deploy/supervisord.conf) in the foreground.
#   DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS: as for any deployment
#   REALTIME_BIND        address:port Daphne listens on          (127.0.0.1:8000)
#   DAPHNE_PROCESSES     Daphne processes sharing that socket     (2)
#   SUPERVISE_REDIS      also run redis-server here (true/false)  (false)
#   REALTIME_RUN_DIR     logs, pid file, supervisor socket        (.data/run)
#   REALTIME_ENV_FILE    a settings file to read                  (none)
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
# Metrics of every process are summed by /metrics; the directory must start empty.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$REALTIME_RUN_DIR/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
exec "$REALTIME_VENV/bin/supervisord" -c "$app_dir/deploy/supervisord.conf"
