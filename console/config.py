"""Settings, from environment variables (nothing secret is ever read from a file of the repo).

Database: CONSOLE_DB_URL (an SQLAlchemy URL) if set; otherwise the tracker_store section of
endpoints.yml (CONSOLE_ENDPOINTS, default the project's), with its ${VARS} expanded as Rasa
does, so that the console always reads the store the assistant writes to.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine.url import URL, make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8090
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message tells the operator what to set."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


_ENV_VAR = re.compile(r"\$\{([^}]+)\}")


def _expand(value: Any) -> Any:
    """${VAR} in a string, as Rasa's YAML loader expands it; an unset variable is an error."""
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and "${" in value:
        missing = [name for name in _ENV_VAR.findall(value) if name not in os.environ]
        if missing:
            raise ConfigError(f"endpoints.yml uses unset environment variables: {', '.join(missing)}")
        return _ENV_VAR.sub(lambda m: os.environ[m.group(1)], value)
    return value


def tracker_store_url(endpoints: Path) -> str | URL:
    """The SQLAlchemy URL of the SQL tracker store that endpoints.yml configures."""
    if not endpoints.is_file():
        raise ConfigError(f"{endpoints} not found: set CONSOLE_DB_URL or CONSOLE_ENDPOINTS")
    section = (yaml.safe_load(endpoints.read_text(encoding="utf-8")) or {}).get("tracker_store") or {}
    section = _expand(section)
    if str(section.get("type", "")).lower() != "sql":
        raise ConfigError(f"{endpoints}: the tracker store is not of type SQL; set CONSOLE_DB_URL")
    dialect = section.get("dialect") or "sqlite"
    db = section.get("db") or "rasa.db"
    host = section.get("url")  # Rasa passes the section's `url` to the SQL store as its host
    if host and "://" in str(host):
        return str(host)  # Rasa accepts a complete URL in `host`
    if dialect.startswith("sqlite"):
        path = Path(db)
        if not path.is_absolute():
            # `rasa run` is started from the project root, where endpoints.yml lies
            path = endpoints.resolve().parent / path
        return URL.create(dialect, database=str(path))
    port = section.get("port")
    return URL.create(
        dialect,
        username=section.get("username"),
        password=section.get("password"),
        host=host,
        port=int(port) if port not in (None, "") else None,
        database=db,  # with `login_db`, Rasa creates and then uses `db`
        query=section.get("query") or {},
    )


def database_url() -> str | URL:
    explicit = os.environ.get("CONSOLE_DB_URL", "").strip()
    if explicit:
        return explicit
    return tracker_store_url(Path(os.environ.get("CONSOLE_ENDPOINTS", ROOT / "endpoints.yml")))


def describe_url(url: str | URL) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass
class Settings:
    db_url: str | URL
    secret_key: str
    dev: bool
    cookie_secure: bool
    domain_path: Path
    data_path: Path
    session_max_age: int = 8 * 3600
    per_page: int = 25
    # peers whose X-Forwarded-For / X-Forwarded-Proto are believed (the load balancer)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    # events older than this many days are deleted by a daily task of the console (None: off)
    retention_days: int | None = None
    # Rasa's HTTP API (--enable-api, --auth-token): the live desk sends staff messages through
    # it. None: the desk shows the queue but cannot take a conversation.
    rasa_url: str | None = None
    rasa_token: str = ""

    @classmethod
    def from_env(cls, dev: bool | None = None, need_secret: bool = True) -> Settings:
        dev = _truthy(os.environ.get("CONSOLE_DEV")) if dev is None else dev
        secret = os.environ.get("CONSOLE_SECRET_KEY", "")
        if not secret:
            if need_secret and not dev:
                raise ConfigError(
                    "CONSOLE_SECRET_KEY is not set. Set it to a long random value "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                    "or start with --dev (CONSOLE_DEV=1) on a developer's machine."
                )
            # a development key lasts as long as the process: sessions end at each restart
            secret = secrets.token_urlsafe(48)
        elif len(secret) < MIN_SECRET_LENGTH and not dev:
            raise ConfigError(f"CONSOLE_SECRET_KEY must have at least {MIN_SECRET_LENGTH} characters")
        cookie_secure = os.environ.get("CONSOLE_COOKIE_SECURE")
        proxies = os.environ.get(
            "CONSOLE_TRUSTED_PROXIES", os.environ.get("CONSOLE_FORWARDED_ALLOW_IPS", "127.0.0.1")
        )
        return cls(
            db_url=database_url(),
            secret_key=secret,
            dev=dev,
            # production sits behind HTTPS; the plain-http dev server must still get its cookie
            cookie_secure=(not dev) if cookie_secure is None else _truthy(cookie_secure),
            domain_path=Path(os.environ.get("CONSOLE_DOMAIN", ROOT / "domain.yml")),
            data_path=Path(os.environ.get("CONSOLE_DATA", ROOT / "data")),
            session_max_age=int(os.environ.get("CONSOLE_SESSION_HOURS", "8")) * 3600,
            per_page=max(1, int(os.environ.get("CONSOLE_PER_PAGE", "25"))),
            trusted_proxies=parse_proxies(proxies),
            retention_days=retention_days(os.environ.get("CHAT_CAGOU_RETENTION_DAYS")),
            rasa_url=rasa_api_url(os.environ.get("CONSOLE_RASA_URL")),
            rasa_token=os.environ.get("RASA_AUTH_TOKEN", ""),
        )


def rasa_api_url(value: str | None) -> str | None:
    """CONSOLE_RASA_URL: the base URL of one Rasa instance's HTTP API (http or https)."""
    url = (value or "").strip().rstrip("/")
    if not url:
        return None
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"CONSOLE_RASA_URL must be an http(s) URL, not {value!r}")
    return url


def parse_proxies(value: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (10.0.0.0/8); each must parse."""
    found = tuple(p.strip() for p in value.split(",") if p.strip())
    for proxy in found:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as error:
            raise ConfigError(f"CONSOLE_TRUSTED_PROXIES: {proxy!r} is not an address or network") from error
    return found


def retention_days(value: str | None) -> int | None:
    """CHAT_CAGOU_RETENTION_DAYS: unset or empty means no automatic purge."""
    if not (value or "").strip():
        return None
    try:
        days = int(str(value).strip())
    except ValueError:
        days = 0
    if not 1 <= days <= 36500:
        raise ConfigError(
            f"CHAT_CAGOU_RETENTION_DAYS must be a number of days from 1 to 36500, not {value!r}"
        )
    return days
