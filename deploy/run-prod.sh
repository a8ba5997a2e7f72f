#!/usr/bin/env bash
# `make run-prod`: the production topology on this machine (docs/production.md).
#   2 Rasa instances (PostgreSQL tracker store, Redis lock store) + action server(s) + nginx.
# Configuration: environment variables only (deploy/prod.env.example lists them); the
# secrets have no default and deploy/check_env.py refuses to start without them, e.g.
#   export RASA_AUTH_TOKEN=$(openssl rand -hex 32)   # Rasa's HTTP API token
#   make run-prod                                    # http://127.0.0.1:8000/webhooks/rest/webhook
# `make run` (one process, SQLite) stays the development default.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2

# Refuse to start with a missing or default secret, before anything else.
"$PY" -m deploy.check_env >/dev/null

command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install -y nginx)" >&2; exit 1; }
for service in "PostgreSQL ${DB_HOST:-127.0.0.1} ${DB_PORT:-5432}" "Redis ${REDIS_HOST:-127.0.0.1} ${REDIS_PORT:-6379}"; do
  set -- $service
  "$PY" -c "import socket,sys; socket.create_connection(('$2', int('$3')), timeout=3)" 2>/dev/null \
    || { echo "$1 is not reachable at $2:$3" >&2; exit 1; }
done

exec "$PY" -m deploy.prod
