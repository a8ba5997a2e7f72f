"""Messenger's message ids and background work (channels/dedupe.py, channels/messenger.py):

- an id is claimed on arrival, confirmed once Rasa has the message, released when Rasa could
  not take it (so that Messenger's next delivery of it is handled);
- the SQLite store (development) runs off the event loop; the Redis store (production) uses
  `SET NX EX` under its key prefix (marked `redis`);
- one queue per sender; the work in flight is drained at shutdown.

The channel is driven in-process: its `accept()` (what the webhook calls after the signature
check) with Rasa replaced by a fake `on_new_message`, behind the real input guard.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.core.lock_store import LockError

from channels import dedupe
from channels.dedupe import CLAIM_TTL, SEEN_TTL, RedisSeen, SqliteSeen, handed_over, store_from_env
from channels.guard import Guard, guarded
from channels.messenger import GraphClient, MessengerInput
from harness.waiting import loop_ticks_during

PSID, OTHER = "6021458812345678", "6021458887654321"


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=30))  # type: ignore[arg-type]


# --- the SQLite store --------------------------------------------------------------------


def test_sqlite_claim_confirm_release(tmp_path):
    store = SqliteSeen(str(tmp_path / "mids.db"))
    assert store.claim_now("mid:a")
    assert not store.claim_now("mid:a")  # being handled: a retry meanwhile is dropped
    store.release_now("mid:a")  # Rasa could not take it
    assert store.claim_now("mid:a")  # the next delivery is handled
    store.confirm_now("mid:a")
    store.release_now("mid:a")  # a confirmed id is never released
    assert not SqliteSeen(str(tmp_path / "mids.db")).claim_now("mid:a")  # after a restart too


def test_sqlite_claim_of_a_dead_process_expires(tmp_path):
    store = SqliteSeen(str(tmp_path / "mids.db"), claim_ttl=0.2)
    assert store.claim_now("mid:a")
    time.sleep(0.3)
    assert store.claim_now("mid:a")
    store.confirm_now("mid:a")
    time.sleep(0.3)
    assert not store.claim_now("mid:a")  # confirmed ids keep the long ttl


def test_sqlite_file_of_the_first_version_is_upgraded(tmp_path):
    path = tmp_path / "mids.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE seen_mid (mid TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
        old.execute("INSERT INTO seen_mid VALUES ('mid:old', ?)", (time.time(),))
    store = SqliteSeen(str(path))
    assert not store.claim_now("mid:old")  # handled before the upgrade: still seen
    store.release_now("mid:old")
    assert not store.claim_now("mid:old")
    assert store.claim_now("mid:new")


def test_sqlite_store_never_blocks_the_event_loop(tmp_path):
    """Another process holds the file's write lock for 1 s: the loop keeps serving meanwhile."""
    path = str(tmp_path / "mids.db")
    store = SqliteSeen(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, lambda: holder.execute("COMMIT")).start()

    claimed, ticks = run(loop_ticks_during(store.claim("mid:a")))
    holder.close()
    assert claimed
    assert ticks >= 10  # about 20 in the second the file was locked


def test_store_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(dedupe.ENV_STORE, raising=False)
    assert isinstance(store_from_env(str(tmp_path / "a.db")), SqliteSeen)
    monkeypatch.setenv(dedupe.ENV_STORE, "redis")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "pfx")
    monkeypatch.setenv("REDIS_PORT", "6390")
    store = store_from_env()  # no connection yet
    assert isinstance(store, RedisSeen) and store.redis_key("mid:a").startswith("pfx:messenger:mid:")
    kwargs = store.redis.connection_pool.connection_kwargs
    assert kwargs["port"] == 6390 and kwargs["socket_timeout"] <= 2 and kwargs["socket_connect_timeout"] <= 2
    monkeypatch.setenv(dedupe.ENV_STORE, "fichier")
    with pytest.raises(ValueError, match=dedupe.ENV_STORE):
        store_from_env()


# --- the Redis store ---------------------------------------------------------------------


@pytest.fixture
def redis_seen() -> Iterator[RedisSeen]:
    from harness.redis import scratch_redis

    with scratch_redis(int(os.environ.get("CHAT_CAGOU_TEST_REDIS_DB", "9"))) as scratch:
        yield RedisSeen(
            scratch.prefix + ":messenger:mid:", host=scratch.host, port=scratch.port, db=scratch.db
        )


@pytest.mark.redis
def test_redis_set_nx_claims_once_across_instances(redis_seen):
    other_instance = RedisSeen(
        redis_seen.prefix,
        **{k: redis_seen.redis.connection_pool.connection_kwargs[k] for k in ("host", "port", "db")},
    )

    async def scenario() -> None:
        results = await asyncio.gather(*(s.claim("mid:a") for s in [redis_seen, other_instance] * 5))
        assert sorted(results) == [False] * 9 + [True]
        key = redis_seen.redis_key("mid:a")
        assert await redis_seen.redis.get(key) == b"pending"
        assert 0 < await redis_seen.redis.ttl(key) <= CLAIM_TTL
        await other_instance.release("mid:a")  # Rasa could not take it
        assert await redis_seen.redis.exists(key) == 0
        assert await redis_seen.claim("mid:a")
        await redis_seen.confirm("mid:a")
        await other_instance.release("mid:a")  # a confirmed id is never released
        assert await redis_seen.redis.get(key) == b"done"
        assert CLAIM_TTL < await redis_seen.redis.ttl(key) <= SEEN_TTL
        assert not await other_instance.claim("mid:a")
        await redis_seen.redis.close()
        await other_instance.redis.close()

    run(scenario())


# --- the channel: hand-over, queues, shutdown --------------------------------------------


class FakeRasa:
    """Rasa's `on_new_message`: records each message, answers it; `fail` raises instead,
    `gate[sender]` makes that sender's turns wait."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail: BaseException | None = None
        self.gates: dict[str, asyncio.Event] = {}
        self.delay = 0.0

    async def __call__(self, message: UserMessage) -> None:
        if self.fail is not None:
            raise self.fail
        sender = message.sender_id.rsplit(":", 1)[-1]
        if sender in self.gates:
            await self.gates[sender].wait()
        await asyncio.sleep(self.delay)
        self.seen.append((sender, message.text or ""))
        await message.output_channel.send_text_message(message.sender_id, "réponse")


@pytest.fixture
def channel(tmp_path, monkeypatch) -> MessengerInput:
    monkeypatch.delenv(dedupe.ENV_STORE, raising=False)

    async def send(self: GraphClient, body: dict[str, Any]) -> bool:
        return True

    monkeypatch.setattr(GraphClient, "send", send)
    return MessengerInput("verify", "secret", "token", dedupe_db=str(tmp_path / "mids.db"))


def on_new_message(rasa: FakeRasa) -> Callable[[UserMessage], Awaitable[Any]]:
    """As the channel's blueprint composes it: the guard around `handed_over(Rasa)`."""
    return guarded(handed_over(rasa), guard=Guard())


async def deliver(channel: MessengerInput, rasa: FakeRasa, *events: tuple[str, str, str]) -> None:
    assert await channel.accept(list(events), on_new_message(rasa), None)


async def settle(channel: MessengerInput) -> None:
    await asyncio.gather(*list(channel.queues.tasks), return_exceptions=True)


def test_an_id_is_seen_once_rasa_has_the_message(channel):
    rasa = FakeRasa()

    async def scenario() -> None:
        await deliver(channel, rasa, ("mid:a", PSID, "bonjour"))
        await deliver(channel, rasa, ("mid:a", PSID, "bonjour"))  # retried while handled
        await settle(channel)
        await deliver(channel, rasa, ("mid:a", PSID, "bonjour"))  # retried later
        await settle(channel)

    run(scenario())
    assert rasa.seen == [(PSID, "bonjour")]


def test_a_message_rasa_could_not_take_stays_unseen(channel):
    """Rasa raised (lock store down): the customer got the contacts from the guard, and the
    id is not marked seen, so Messenger's next delivery of the message is handled."""
    rasa = FakeRasa()
    rasa.fail = LockError("Redis down")

    async def scenario() -> None:
        await deliver(channel, rasa, ("mid:a", PSID, "code PUK ?"))
        await settle(channel)
        assert rasa.seen == []
        rasa.fail = None
        await deliver(channel, rasa, ("mid:a", PSID, "code PUK ?"))  # the retry
        await settle(channel)
        await deliver(channel, rasa, ("mid:a", PSID, "code PUK ?"))  # now it is seen
        await settle(channel)

    run(scenario())
    assert rasa.seen == [(PSID, "code PUK ?")]


def test_message_id_store_down_refuses_the_call_so_messenger_retries(channel, monkeypatch):
    async def unavailable(key: str) -> bool:
        raise ConnectionError("Redis down")

    monkeypatch.setattr(channel.seen, "claim", unavailable)
    rasa = FakeRasa()
    assert run(channel.accept([("mid:a", PSID, "bonjour")], on_new_message(rasa), None)) is False
    assert rasa.seen == [] and not channel.queues.tasks


def test_one_slow_sender_does_not_delay_another_and_keeps_its_order(channel):
    rasa = FakeRasa()

    async def scenario() -> None:
        rasa.gates[PSID] = asyncio.Event()
        # One webhook call with both senders, then a second message of the slow sender.
        await deliver(channel, rasa, ("mid:1", PSID, "premier"), ("mid:2", OTHER, "autre client"))
        await deliver(channel, rasa, ("mid:3", PSID, "deuxième"))
        for _ in range(100):
            if rasa.seen:
                break
            await asyncio.sleep(0.01)
        assert rasa.seen == [(OTHER, "autre client")]  # not behind the slow turn
        rasa.gates[PSID].set()
        await settle(channel)

    run(scenario())
    assert rasa.seen == [(OTHER, "autre client"), (PSID, "premier"), (PSID, "deuxième")]


def shutdown_listener(channel: MessengerInput) -> Callable[[Any, Any], Awaitable[None]]:
    """The listener the channel's blueprint registers for Sanic's shutdown."""
    blueprint = channel.blueprint(FakeRasa())
    listeners = [
        f.listener
        for f in blueprint._future_listeners
        if "stop" in str(f.event) or "shutdown" in str(f.event)
    ]
    assert len(listeners) == 1
    return listeners[0]


def test_shutdown_waits_for_the_messages_being_handled(channel, monkeypatch):
    monkeypatch.setenv(dedupe.ENV_SHUTDOWN_TIMEOUT, "5")
    rasa = FakeRasa()
    rasa.delay = 0.5
    drain = shutdown_listener(channel)

    async def scenario() -> None:
        await deliver(channel, rasa, ("mid:a", PSID, "bonjour"), ("mid:b", OTHER, "horaires ?"))
        await drain(None, None)
        assert not channel.queues.tasks

    run(scenario())
    assert sorted(rasa.seen) == sorted([(PSID, "bonjour"), (OTHER, "horaires ?")])
    assert not SqliteSeen(channel.dedupe_db).claim_now("mid:a")  # handled: seen


def test_shutdown_cancels_what_does_not_finish_in_time_and_releases_its_id(channel, monkeypatch):
    monkeypatch.setenv(dedupe.ENV_SHUTDOWN_TIMEOUT, "0.2")
    rasa = FakeRasa()
    rasa.delay = 30
    drain = shutdown_listener(channel)

    async def scenario() -> None:
        await deliver(channel, rasa, ("mid:a", PSID, "bonjour"))
        started = time.monotonic()
        await drain(None, None)
        assert time.monotonic() - started < 3
        assert not channel.queues.tasks

    run(scenario())
    assert rasa.seen == []
    assert SqliteSeen(channel.dedupe_db).claim_now("mid:a")  # unseen: the next delivery is handled


SANIC_APP = """
import asyncio, sys
from sanic import Sanic
from channels.messenger import GraphClient, MessengerInput

port, out, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]

async def send(self, body):
    return True

GraphClient.send = send

async def rasa(message):  # a turn of 0.5 s
    await asyncio.sleep(0.5)
    with open(out, "a") as f:
        f.write(message.text + "\\n")
    await message.output_channel.send_text_message(message.sender_id, "ok")

app = Sanic("shutdown_test")
channel = MessengerInput("verify", "secret", "token", dedupe_db=db)
app.blueprint(channel.blueprint(rasa), url_prefix="/webhooks/facebook")
app.run(host="127.0.0.1", port=port, access_log=False)
"""


def test_sigterm_lets_the_messages_being_handled_finish(tmp_path):
    """A real Sanic server (the version Rasa runs) with the channel's blueprint: SIGTERM right
    after the webhook's acknowledgement, and the message is still handled before the exit."""
    import hashlib
    import hmac
    import json
    import signal
    import subprocess
    import sys

    import requests

    from harness.ports import free_port
    from harness.project import ROOT
    from harness.waiting import wait_until

    port, out = free_port(), tmp_path / "handled.txt"
    env = {**os.environ, "CHAT_CAGOU_RATE_LIMIT_STORE": "memory", "PYTHONPATH": str(ROOT)}
    env.pop(dedupe.ENV_STORE, None)
    env.pop(dedupe.ENV_SHUTDOWN_TIMEOUT, None)
    log = (tmp_path / "sanic.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", SANIC_APP, str(port), str(out), str(tmp_path / "mids.db")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/webhooks/facebook/", timeout=1).ok
            except requests.ConnectionError:
                return process.poll() is not None

        assert wait_until(up, timeout=60, interval=0.1) and process.poll() is None, (
            tmp_path / "sanic.log"
        ).read_text()
        event = {
            "sender": {"id": PSID},
            "recipient": {"id": "page"},
            "message": {"mid": "m_1", "text": "bonjour"},
        }
        body = json.dumps({"object": "page", "entry": [{"id": "page", "messaging": [event]}]}).encode()
        signature = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
        reply = requests.post(
            f"http://127.0.0.1:{port}/webhooks/facebook/webhook",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            timeout=10,
        )
        assert reply.status_code == 200 and reply.text == "EVENT_RECEIVED"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert out.exists() and out.read_text() == "bonjour\n", (tmp_path / "sanic.log").read_text()
    assert not SqliteSeen(str(tmp_path / "mids.db")).claim_now("mid:m_1")  # handled: seen
