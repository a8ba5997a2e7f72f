"""Staff accounts: scrypt password hashes (stdlib), roles, login throttling, CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from console import db

ROLES = ("viewer", "admin")
MIN_PASSWORD_LENGTH = 10
# scrypt, n=2**15: about 0.1 s and 32 MiB per check, too slow for guessing at scale
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_LEN = 2**15, 8, 1, 32
SCRYPT_MAXMEM = 64 * 1024 * 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM, dklen=KEY_LEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        got = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Checked against when the name is unknown, so that a wrong name costs as long as a wrong password
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def session_fingerprint(password_hash: str, secret_key: str) -> str:
    """Kept in the session: a new password (make staff-user again) ends the old sessions."""
    return hmac.new(secret_key.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def upsert_user(engine: Engine, name: str, role: str, password: str) -> bool:
    """Creates the account, or gives an existing one this role and password. True if created."""
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise ValueError("le nom doit être non vide, sans espace, de 100 caractères au plus")
    if role not in ROLES:
        raise ValueError(f"rôle inconnu: {role} (viewer ou admin)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"le mot de passe doit avoir au moins {MIN_PASSWORD_LENGTH} caractères")
    now = time.time()
    hashed = hash_password(password)
    with engine.begin() as conn:
        found = conn.execute(sa.select(db.users.c.id).where(db.users.c.name == name)).scalar()
        if found is None:
            conn.execute(
                db.users.insert().values(
                    name=name, role=role, password_hash=hashed, created_at=now, updated_at=now
                )
            )
            return True
        conn.execute(
            db.users.update()
            .where(db.users.c.id == found)
            .values(role=role, password_hash=hashed, updated_at=now)
        )
        return False


def delete_user(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(db.users.delete().where(db.users.c.name == name)).rowcount > 0


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(db.users.c.name, db.users.c.role, db.users.c.created_at).order_by(db.users.c.name)
        )
        return [dict(r._mapping) for r in rows]


def authenticate(engine: Engine, name: str, password: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.users).where(db.users.c.name == name.strip())).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return dict(row._mapping) if verify_password(password, row.password_hash) else None


def user_by_id(engine: Engine, user_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.users).where(db.users.c.id == user_id)).first()
    return dict(row._mapping) if row else None


class Throttle:
    """At most `limit` failed logins per account name and per client address in `window`
    seconds, in memory (one console process)."""

    def __init__(self, limit: int = 5, window: float = 900):
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.window]
        self._failures[key] = times
        return times

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.limit for k in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, name_key: str) -> None:
        with self._lock:
            self._failures.pop(name_key, None)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(session: dict, submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted) and hmac.compare_digest(str(expected), str(submitted))
