#!/usr/bin/env bash
# Serve the website chat page (web/) at http://localhost:${WEB_PORT:-8080}/.
#   scripts/web.sh                 serve in the foreground (Ctrl-C to stop)
#   scripts/web.sh CMD [ARGS...]   serve in the background while CMD runs
# `make run` starts the page with the other servers itself (scripts/start.py, logs/web.log).
set -euo pipefail
cd "$(dirname "$0")/.."
export WEB_PORT=${WEB_PORT:-8080} RASA_URL=${RASA_URL:-http://localhost:${RASA_PORT:-5005}}

if [ ! -f web/node_modules/socket.io-client/dist/socket.io.min.js ]; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ $# -eq 0 ]; then
  exec .venv/bin/python web/serve.py
fi

mkdir -p logs
.venv/bin/python web/serve.py > logs/web.log 2>&1 &
WEB_PID=$!
trap 'kill $WEB_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 20); do
  if curl -sf -o /dev/null "http://localhost:$WEB_PORT/"; then break; fi
  if ! kill -0 $WEB_PID 2>/dev/null; then
    echo "The chat page did not start:" >&2; cat logs/web.log >&2; exit 1
  fi
  sleep 0.5
done
echo "Chat page: http://localhost:$WEB_PORT/  (Chat Cagou widget, Rasa $RASA_URL)"
"$@"
