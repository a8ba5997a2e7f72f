#!/usr/bin/env bash
# Start the action server (5055) and Rasa (5005); `run.sh shell` opens the terminal chat instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2
ACTION_PORT=${ACTION_PORT:-5055}
RASA_PORT=${RASA_PORT:-5005}
mkdir -p logs

.venv/bin/python -m rasa_sdk --actions actions --port "$ACTION_PORT" > logs/actions.log 2>&1 &
ACTIONS_PID=$!
trap 'kill $ACTIONS_PID 2>/dev/null || true' EXIT

# The action server loads and validates the fiche at start-up: wait for it, or show why it failed.
for _ in $(seq 1 60); do
  if curl -sf "http://localhost:$ACTION_PORT/health" > /dev/null; then break; fi
  if ! kill -0 $ACTIONS_PID 2>/dev/null; then
    echo "Le serveur d'actions n'a pas démarré :" >&2; tail -n 20 logs/actions.log >&2; exit 1
  fi
  sleep 1
done

if [ "${1:-}" = "shell" ]; then
  .venv/bin/rasa shell --model models/chat-cagou.tar.gz --endpoints endpoints.yml
  exit
fi

# Review console for support staff (same tracker store). Without CONSOLE_SECRET_KEY it runs in
# development mode (random key, non-Secure cookie): set the key in production.
CONSOLE_PORT=${CONSOLE_PORT:-8090}
.venv/bin/python -m console serve --port "$CONSOLE_PORT" $( [ -n "${CONSOLE_SECRET_KEY:-}" ] || echo --dev ) \
  > logs/console.log 2>&1 &
CONSOLE_PID=$!
trap 'kill $ACTIONS_PID $CONSOLE_PID 2>/dev/null || true' EXIT

cat <<MSG
Chat Cagou démarre (action server :$ACTION_PORT, Rasa :$RASA_PORT). Pour lui parler :
  curl -s http://localhost:$RASA_PORT/webhooks/rest/webhook \\
       -H 'Content-Type: application/json' \\
       -d '{"sender": "moi", "message": "code PUK ?"}'
ou dans le terminal : make shell      (Ctrl-C pour arrêter)
Console de revue : http://localhost:$CONSOLE_PORT/  (comptes : make staff-user NAME=... ROLE=viewer|admin)
MSG
.venv/bin/rasa run --model models/chat-cagou.tar.gz --port "$RASA_PORT" \
  --credentials credentials.yml --endpoints endpoints.yml
