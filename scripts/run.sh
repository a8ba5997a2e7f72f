#!/usr/bin/env bash
# Start Chat Cagou as `make run` does (without the install and training checks):
#   scripts/run.sh          action server, Rasa, review console and chat page (scripts/start.py)
#   scripts/run.sh shell    the action server, then the terminal chat (`make shell`)
# Ports: RASA_PORT (5005), ACTION_PORT (5055), CONSOLE_PORT (8090), WEB_PORT (8080); logs in
# logs/. See scripts/start.py for the other settings.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "shell" ]; then
  exec .venv/bin/python scripts/start.py --shell
fi
exec .venv/bin/python scripts/start.py "$@"
