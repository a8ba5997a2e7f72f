"""Staff accounts: scrypt password hashes (stdlib), roles, server-side sessions, login
throttling, CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from console import db

# viewer: reads conversations and statistics; editor: also keeps the fiche current (/fiche);
# admin: everything, accounts and retention included.
ROLES = ("viewer", "editor", "admin")
FICHE_ROLES = ("editor", "admin")
MIN_PASSWORD_LENGTH = 10
# scrypt, n=2**15: about 0.1 s and 32 MiB per check, too slow for guessing at scale
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_LEN = 2**15, 8, 1, 32
SCRYPT_MAXMEM = 64 * 1024 * 1024
# At most this many scrypt computations at once (32 MiB and 0.1 s of CPU each): a flood of
# logins queues instead of exhausting the memory and the CPU
HASH_SLOTS = 2
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _hash_slots:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=dklen)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_LEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        got = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Checked against when the name is unknown, so that a wrong name costs as long as a wrong password
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


# --- server-side sessions: the cookie holds a random id, console_sessions its hash --------


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def open_session(engine: Engine, user_id: int, max_age: float) -> str:
    """A new session for this user; its id goes in the (signed) cookie."""
    sid = secrets.token_urlsafe(32)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(db.sessions.delete().where(db.sessions.c.expires_at < now))
        conn.execute(
            db.sessions.insert().values(
                id_hash=_sid_hash(sid), user_id=user_id, created_at=now, expires_at=now + max_age
            )
        )
    return sid


def session_user(engine: Engine, sid: str) -> dict | None:
    """The account of an open session, or None (ended, expired, or the account is gone)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(db.users)
            .join(db.sessions, db.sessions.c.user_id == db.users.c.id)
            .where(db.sessions.c.id_hash == _sid_hash(sid), db.sessions.c.expires_at > time.time())
        ).first()
    return dict(row._mapping) if row else None


def close_session(engine: Engine, sid: str) -> None:
    """Logout: the session ends on the server, whatever happens to the cookie."""
    with engine.begin() as conn:
        conn.execute(db.sessions.delete().where(db.sessions.c.id_hash == _sid_hash(sid)))


def upsert_user(engine: Engine, name: str, role: str, password: str) -> bool:
    """Creates the account, or gives an existing one this role and password. True if created."""
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise ValueError("le nom doit être non vide, sans espace, de 100 caractères au plus")
    if role not in ROLES:
        raise ValueError(f"rôle inconnu: {role} (viewer, editor ou admin)")
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
        # a new password or role ends that person's open sessions
        conn.execute(db.sessions.delete().where(db.sessions.c.user_id == found))
        return False


def delete_user(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        found = conn.execute(sa.select(db.users.c.id).where(db.users.c.name == name)).scalar()
        if found is None:
            return False
        conn.execute(db.sessions.delete().where(db.sessions.c.user_id == found))
        conn.execute(db.users.delete().where(db.users.c.id == found))
        return True


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(db.users.c.name, db.users.c.role, db.users.c.created_at).order_by(db.users.c.name)
        )
        return [dict(r._mapping) for r in rows]


def check_login(engine: Engine, name: str, password: str) -> tuple[dict | None, bool]:
    """(the account if the password is right, whether the name is an account's)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.users).where(db.users.c.name == name.strip())).first()
    if row is None:
        verify_password(password, _DUMMY_HASH)
        return None, False
    return (dict(row._mapping) if verify_password(password, row.password_hash) else None), True


def authenticate(engine: Engine, name: str, password: str) -> dict | None:
    return check_login(engine, name, password)[0]


def user_by_id(engine: Engine, user_id: int) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(db.users).where(db.users.c.id == user_id)).first()
    return dict(row._mapping) if row else None


class LoginThrottle:
    """Failed logins, in memory (one console process), bounded in size.

    - Per (name, address): `free` attempts, then each one waits twice as long as the one
      before (1 s, 2 s, 4 s... up to `max_delay`). Keyed on the pair, so that someone
      guessing a known name from their address never locks its owner out elsewhere.
    - Per address: at most `per_address` attempts in `window` seconds, whatever the names.

    `attempt()` records the attempt before the password is checked, under one lock: parallel
    requests cannot all pass the check before any failure is counted. A success clears it.
    At most `max_keys` pairs and addresses are remembered (the oldest are forgotten first).
    """

    def __init__(
        self,
        free: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        per_address: int = 30,
        window: float = 900.0,
        max_keys: int = 10_000,
    ):
        self.free, self.base_delay, self.max_delay = free, base_delay, max_delay
        self.per_address, self.window, self.max_keys = per_address, window, max_keys
        self._pairs: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def delay_after(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.base_delay * 2 ** min(failures - self.free, 40), self.max_delay)

    def _bound(self, table: OrderedDict) -> None:
        while len(table) > self.max_keys:
            table.popitem(last=False)

    def attempt(self, name: str, address: str, now: float | None = None) -> float:
        """0 if this attempt may go on (it is then counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        pair = (name.lower(), address)
        with self._lock:
            failures, last = self._pairs.get(pair, (0, now))
            if failures and now - last > self.max_delay + self.window:
                failures = 0  # quiet long enough: forgotten
            wait = last + self.delay_after(failures) - now if failures else 0.0
            recent = self._addresses.get(address) or deque(maxlen=self.per_address)
            while recent and now - recent[0] >= self.window:
                recent.popleft()
            if len(recent) >= self.per_address:
                wait = max(wait, recent[0] + self.window - now)
            if wait > 0:
                return wait
            self._pairs[pair] = (failures + 1, now)
            self._pairs.move_to_end(pair)
            recent.append(now)
            self._addresses[address] = recent
            self._addresses.move_to_end(address)
            self._bound(self._pairs)
            self._bound(self._addresses)
            return 0.0

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._pairs.pop((name.lower(), address), None)
            recent = self._addresses.get(address)
            if recent:
                recent.pop()  # a right password does not count against the address

    def __len__(self) -> int:
        return len(self._pairs) + len(self._addresses)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(session: dict, submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted) and hmac.compare_digest(str(expected), str(submitted))
