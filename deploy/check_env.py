"""Start-up check of the production environment: refuse to run with a missing or default secret.

    python -m deploy.check_env            # exit 0, or print every problem and exit 2

Run by deploy/run-prod.sh (`make run-prod`) before anything starts, and by
deploy/rasa_run.py in every Rasa process (so a container started without its secrets stops
at once). Secrets come from the environment only; deploy/prod.env.example lists them with
placeholder values, which are refused here like any other well-known default.

Rules:
- RASA_AUTH_TOKEN (Rasa's HTTP API token): required, at least 32 characters, not a default;
- DB_PASSWORD / REDIS_PASSWORD: required and not a default, except when DB_HOST / REDIS_HOST
  is a loopback address (a local server with trust authentication, as on the test machines),
  where they may be empty;
- Messenger: with FB_MESSENGER_REQUIRED=true, FB_VERIFY, FB_SECRET and FB_PAGE_ACCESS_TOKEN are
  required (at least 16 characters, not defaults); with only some of them set, error too;
- CHAT_CAGOU_SESSION_SECRET (signs the widget's session ids, shared by every instance):
  required, at least 32 characters, not a default;
- CHAT_CAGOU_WEB_ORIGINS, when set, must list at least one origin (an empty list would let
  every site open the widget's socket);
- FB_GRAPH_API_URL, when set, must be https (plain http only to a loopback address: the
  tests' stub);
- names and numbers that end up in SQL, Redis keys or nginx's configuration must be plain
  (DB_NAME, REDIS_KEY_PREFIX, ports, NGINX_REAL_IP_FROM...).
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

DEFAULT_SECRETS = {
    "",
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "secret",
    "password",
    "passwd",
    "token",
    "rasa",
    "admin",
    "root",
    "postgres",
    "redis",
    "test",
    "default",
    "example",
    "xxx",
    "12345678",
    "123456",
    "azerty",
    "qwerty",
}
PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|your[-_ ]|<.*>|example|placeholder", re.IGNORECASE)
LOOPBACK = {"127.0.0.1", "localhost", "::1", ""}
TRUE = {"1", "true", "yes", "on"}

MIN_TOKEN = 32
MIN_FB = 16


def is_default(value: str) -> bool:
    return value.strip().lower() in DEFAULT_SECRETS or bool(PLACEHOLDER.search(value)) or len(set(value)) < 4


def _secret(env: Mapping[str, str], name: str, min_length: int, problems: list[str]) -> None:
    value = env.get(name, "")
    if not value:
        problems.append(f"{name} is not set")
    elif is_default(value):
        problems.append(
            f"{name} has a default or placeholder value: choose a random one (openssl rand -hex 32)"
        )
    elif len(value) < min_length:
        problems.append(f"{name} is too short ({len(value)} characters, at least {min_length})")


def _password(env: Mapping[str, str], name: str, host_var: str, problems: list[str]) -> None:
    host = env.get(host_var, "127.0.0.1")
    value = env.get(name, "")
    if not value:
        if host not in LOOPBACK and not host.startswith("/"):
            problems.append(f"{name} is not set ({host_var}={host} is not a loopback address)")
    elif is_default(value):
        problems.append(f"{name} has a default or placeholder value")


def _int(env: Mapping[str, str], name: str, low: int, high: int, problems: list[str]) -> None:
    value = env.get(name)
    if value is None or value == "":
        return
    if not value.isdigit() or not low <= int(value) <= high:
        problems.append(f"{name} must be a number from {low} to {high}, not {value!r}")


def problems(env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the production environment `env` (default: os.environ)."""
    env = os.environ if env is None else env
    found: list[str] = []
    _secret(env, "RASA_AUTH_TOKEN", MIN_TOKEN, found)
    _password(env, "DB_PASSWORD", "DB_HOST", found)
    _password(env, "REDIS_PASSWORD", "REDIS_HOST", found)
    _secret(env, "CHAT_CAGOU_SESSION_SECRET", MIN_TOKEN, found)
    if "CHAT_CAGOU_WEB_ORIGINS" in env and not re.sub(r"[,\s]", "", env["CHAT_CAGOU_WEB_ORIGINS"]):
        found.append("CHAT_CAGOU_WEB_ORIGINS is set but empty: list the pages allowed to open the widget")
    graph = env.get("FB_GRAPH_API_URL")
    if graph:
        parts = urlsplit(graph)
        if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
            found.append(f"FB_GRAPH_API_URL must be an https:// URL, not {graph!r}")

    fb_names = ("FB_VERIFY", "FB_SECRET", "FB_PAGE_ACCESS_TOKEN")
    fb_set = [n for n in fb_names if env.get(n)]
    if env.get("FB_MESSENGER_REQUIRED", "").lower() in TRUE or fb_set:
        for name in fb_names:
            _secret(env, name, MIN_FB, found)

    if env.get("DB_NAME") and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", env["DB_NAME"]):
        found.append("DB_NAME must be a plain PostgreSQL name (lower-case letters, digits, _)")
    if env.get("REDIS_KEY_PREFIX") and not env["REDIS_KEY_PREFIX"].isalnum():
        found.append("REDIS_KEY_PREFIX must be letters and digits only (Rasa's lock store requires it)")
    for name, low, high in (
        ("DB_PORT", 1, 65535),
        ("REDIS_PORT", 1, 65535),
        ("REDIS_DB", 0, 15),
        ("RASA_INSTANCES", 1, 16),
        ("ACTION_SERVERS", 1, 16),
        ("NGINX_PORT", 1, 65535),
        ("RASA_PORT_BASE", 1, 65535),
        ("ACTION_PORT_BASE", 1, 65535),
        ("ACTION_LB_PORT", 1, 65535),
        ("TICKET_LOCK_LIFETIME", 1, 3600),
    ):
        _int(env, name, low, high, found)
    for name in ("NGINX_RATE_PER_IP", "NGINX_SOCKET_RATE_PER_IP", "NGINX_MESSENGER_RATE"):
        rate = env.get(name)
        if rate and not re.fullmatch(r"\d+r/[sm]", rate):
            found.append(f"{name} must look like 5r/s, not {rate!r}")
    for name in ("NGINX_BURST_PER_IP", "NGINX_SOCKET_BURST_PER_IP", "NGINX_MESSENGER_BURST"):
        _int(env, name, 0, 100000, found)
    for name in ("NGINX_CONN_PER_IP", "NGINX_SOCKET_CONN_PER_IP"):
        _int(env, name, 1, 100000, found)
    for item in re.split(r"[,\s]+", env.get("NGINX_REAL_IP_FROM", "").strip()):
        if item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                found.append(f"NGINX_REAL_IP_FROM must list addresses or CIDR ranges, not {item!r}")
    return found


def check_or_exit(env: Mapping[str, str] | None = None) -> None:
    found = problems(env)
    if found:
        print("Chat Cagou (production): refusing to start, the environment is not safe:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        print("See deploy/prod.env.example and docs/production.md.", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    check_or_exit()
    print("environment OK")
