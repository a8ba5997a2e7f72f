"""Reliability of the production topology, against the real processes (deploy/prod.py):
two Rasa instances behind nginx, PostgreSQL tracker store, Redis lock store, action server.

The topology is started once (the `prod` fixture of tests/conftest.py, harness/topology.py); the
tests run in this file's order,
the last one leaves one Rasa instance killed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager

import pytest
import requests

from actions.answers import channel_phrase
from actions.fiche import hour_text, load_fiche
from actions.markdown import plain
from channels.guard import unavailable_text
from deploy.lock_store import AtomicRedisLockStore
from harness.servers import texts
from harness.socketio_client import Widget
from harness.waiting import wait_until

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.postgres, pytest.mark.redis]

FICHE = load_fiche()
SERVICE = FICHE.phones["1000"]
CONTACTS = [SERVICE.number, FICHE.email_service_clientele, FICHE.agency_address]


def new_sender(kind: str) -> str:
    return f"rel-{kind}-{uuid.uuid4().hex[:8]}"


def label(procedure: str) -> str:
    return FICHE.procedures[procedure].label


def yes_by(procedure: str, channel: str) -> list[str]:
    """What the answer for a channel that works says first (actions/answers.py), and its procedure."""
    return [f"Oui, {in_sentence(channel)} :", f"Démarche : {label(procedure)}."]


def no_by(procedure: str, channel: str) -> str:
    return f"Non, pas {in_sentence(channel)} :"


def in_sentence(channel: str) -> str:
    """'En agence (Agence Entreprise)' -> 'en agence (Agence Entreprise)'."""
    return channel_phrase(FICHE, channel)


# (question, facts the answer must carry), every fact from the fiche
QUESTIONS: list[tuple[str, list[str]]] = [
    ("code PUK ?", [label("code_puk"), FICHE.contact_form]),
    ("vous êtes ouverts quand ?", [f"{hour_text(SERVICE.opens)} à {hour_text(SERVICE.closes)}"]),
    ("où sont les tarifs ?", [FICHE.tariff_guide]),
    ("comment vous appeler depuis la France ?", [FICHE.abroad_number]),
    ("quel est votre adresse mail ?", [FICHE.email_service_clientele, FICHE.email_agence]),
    ("je veux parler à un conseiller", [SERVICE.number, FICHE.email_service_clientele, FICHE.agency_address]),
]


def has_facts(answer: str, facts: list[str]) -> bool:
    return all(fact in answer for fact in facts)


# --- context across instances ------------------------------------------------------------


def test_one_conversation_through_both_instances_keeps_its_context(prod):
    sender = new_sender("alternate")
    first = texts(prod.say(sender, "je veux résilier", base=prod.rasa_url(0)))
    assert first.startswith(label("resiliation")), first
    follow = texts(prod.say(sender, "et par mail ?", base=prod.rasa_url(1)))
    assert follow.startswith(yes_by("resiliation", "courrier")[0]) and has_facts(
        follow, yes_by("resiliation", "courrier")
    ), follow
    assert FICHE.email_service_clientele in follow
    # and back again, through nginx this time (either instance)
    other = texts(prod.say(sender, "et en agence ?"))
    assert other.startswith(yes_by("resiliation", "agence")[0]) and has_facts(
        other, yes_by("resiliation", "agence")
    ), other
    assert prod.wait_user_texts(sender, ["je veux résilier", "et par mail ?", "et en agence ?"]) == [
        "je veux résilier",
        "et par mail ?",
        "et en agence ?",
    ]


def test_widget_socketio_through_nginx_keeps_its_session(prod):
    """socket.io polling needs every request of a client on the same instance (sticky upstream)."""
    with closing(Widget(prod.url, origin="http://localhost:8080")) as widget:
        session_id = widget.session()
        answers = [
            widget.ask(text, session_id, timeout=60).get("text", "")
            for text in ("je veux résilier", "et par mail ?")
        ]
    shown = [plain(a) for a in answers]  # what the widget shows
    assert shown[0].startswith(label("resiliation"))
    assert shown[1].startswith(yes_by("resiliation", "courrier")[0]) and has_facts(
        shown[1], yes_by("resiliation", "courrier")
    )


# --- the lock store ------------------------------------------------------------------------


def lock_tickets(prod, sender: str) -> int:
    """How many messages of the REST `sender` hold or wait for the conversation's lock (Redis).
    The conversation is "rest:" + sender (channels/rest.py)."""
    raw = prod.redis.client().get(f"{prod.redis.prefix}:lock:rest:{sender}")
    return len(json.loads(raw)["tickets"]) if raw else 0


@contextmanager
def action_server_paused(prod):
    """The action servers stopped (SIGSTOP) for a moment: a message needing an action holds its
    conversation's lock meanwhile (nginx waits up to ACTION_TIMEOUT for the answer)."""
    pids = [proc.pid for proc in prod.topology.actions if proc is not None]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def test_concurrent_messages_of_one_customer_processed_one_at_a_time_in_order(prod):
    """Six messages of one customer sent to the two instances alternately while the first one
    is still in progress (its action waits on a paused action server): all six are queued on
    the conversation's lock in Redis at once, then processed one at a time, in the order they
    were sent. Nothing lost, each answer for its own question, no interleaving in the tracker."""
    sender = new_sender("concurrent")
    script = QUESTIONS[:4] + [
        ("je veux résilier", [label("resiliation")]),
        ("et par mail ?", yes_by("resiliation", "courrier")),
    ]
    replies: dict[int, str] = {}

    def send(index: int, question: str) -> None:
        replies[index] = texts(prod.say(sender, question, base=prod.rasa_url(index % 2)))

    threads = []
    with action_server_paused(prod):
        for index, (question, _) in enumerate(script):
            thread = threading.Thread(target=send, args=(index, question))
            thread.start()
            threads.append(thread)
            # its ticket is issued before the next message is sent: the sending order is the queue's
            assert wait_until(lambda n=index + 1: lock_tickets(prod, sender) == n), index
        assert not replies  # all six waiting at once
    for thread in threads:
        thread.join(timeout=120)
    for index, (question, facts) in enumerate(script):
        assert has_facts(replies.get(index, ""), facts), (question, replies.get(index))

    questions = [q for q, _ in script]
    assert prod.wait_user_texts(sender, questions) == questions
    # In the tracker, each question is followed by its own answer before the next question.
    events = [e for e in prod.events(sender) if e.get("event") in ("user", "bot")]
    turns: list[list[str]] = []
    for event in events:
        if event["event"] == "user":
            turns.append([])
        else:
            turns[-1].append(event.get("text") or "")
    assert len(turns) == len(script)
    for (question, facts), answers in zip(script, turns, strict=False):
        assert len(answers) == 1 and has_facts(answers[0], facts), (question, answers)
    assert lock_tickets(prod, sender) == 0


def test_lock_store_issues_unique_tickets_under_contention(prod):
    """deploy/lock_store.py: tickets issued at once by many clients (threads, each with its own
    connection, as separate Rasa instances) are all different; Rasa's RedisLockStore would
    give some clients the same ticket (GET then SET)."""
    conversation = "contention-" + uuid.uuid4().hex[:8]
    stores = [
        AtomicRedisLockStore(
            host=prod.redis.host, port=prod.redis.port, db=prod.redis.db, key_prefix=prod.redis.prefix
        )
        for _ in range(8)
    ]
    start = threading.Barrier(len(stores))

    def issue(store) -> list[int]:
        start.wait()
        return [store.issue_ticket(conversation, 30) for _ in range(25)]

    with ThreadPoolExecutor(len(stores)) as pool:
        tickets = [t for batch in pool.map(issue, stores) for t in batch]
    assert sorted(tickets) == list(range(len(stores) * 25))
    lock = stores[0].get_lock(conversation)
    assert len(lock.tickets) == len(tickets)
    for ticket in tickets:
        stores[ticket % len(stores)].cleanup(conversation, ticket)
    assert stores[0].get_lock(conversation) is None  # deleted with its last ticket
    assert prod.redis.client().exists(prod.redis.prefix + ":lock:" + conversation) == 0


def test_a_message_waiting_behind_a_dead_instance_ticket_is_served(prod):
    """An instance killed while it held a conversation's ticket: the message retried elsewhere
    waits for that ticket to expire, then is served (Rasa's own loop would wait forever once
    its ticket, issued a moment later, expired too)."""
    import asyncio

    conversation = "dead-holder-" + uuid.uuid4().hex[:8]
    store = AtomicRedisLockStore(
        host=prod.redis.host, port=prod.redis.port, db=prod.redis.db, key_prefix=prod.redis.prefix
    )
    store.issue_ticket(conversation, 1)  # the killed instance's ticket, never released

    async def retried() -> float:
        started = time.monotonic()
        async with store.lock(conversation, lock_lifetime=1):
            return time.monotonic() - started

    waited = asyncio.run(asyncio.wait_for(retried(), timeout=15))
    assert 0.8 < waited < 5
    assert store.get_lock(conversation) is None


# --- Messenger's message ids in Redis ---------------------------------------------------------


def test_messenger_delivery_reaching_both_instances_is_answered_once(prod):
    """FB_DEDUPE_STORE=redis: the same Messenger delivery reaching both instances at once (a
    retry that nginx sends to the other one) is handled once, and its id is then seen in Redis."""
    import hashlib
    import hmac

    sender = str(6_000_000_000_000_000 + uuid.uuid4().int % 10**15)
    mid = "m_" + uuid.uuid4().hex
    event = {
        "sender": {"id": sender},
        "recipient": {"id": "page"},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": "code PUK ?"},
    }
    body = json.dumps({"object": "page", "entry": [{"id": "page", "time": 1, "messaging": [event]}]}).encode()
    signature = "sha256=" + hmac.new(prod.fb["FB_SECRET"].encode(), body, hashlib.sha256).hexdigest()

    def post(base: str) -> int:
        return requests.post(
            base + "/webhooks/facebook/webhook",
            data=body,
            timeout=30,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(post, [prod.rasa_url(0), prod.rasa_url(1)] * 2)) == [200] * 4

    def answers() -> int:
        return sum(label("code_puk") in text for text in prod.graph.texts(sender))

    assert wait_until(lambda: answers() >= 1, timeout=60, interval=0.2)
    key = prod.redis.prefix + ":messenger:mid:" + hashlib.sha256(f"mid:{mid}".encode()).hexdigest()
    assert wait_until(lambda: prod.redis.client().get(key) == b"done", timeout=10, interval=0.2)
    time.sleep(2)  # a duplicate would have been answered by now
    assert answers() == 1


# --- action server down ---------------------------------------------------------------------


def test_action_server_down_gives_the_contacts_then_normal_answers_come_back(prod):
    sender = new_sender("actions")
    prod.topology.stop_actions()
    try:
        answer = texts(prod.say(sender, "code PUK ?"))
        assert answer == plain(unavailable_text())
        for fact in CONTACTS + [SERVICE.hours_text]:
            assert fact in answer, answer
        # Every turn goes through action_repondre (small talk too, issue 10): still the contacts.
        assert texts(prod.say(sender, "bonjour")) == plain(unavailable_text())
    finally:
        prod.topology.start_actions()
    deadline = time.monotonic() + 30
    while True:
        answer = texts(prod.say(sender, "code PUK ?"))
        if answer.startswith(label("code_puk")) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert answer.startswith(label("code_puk")), answer
    assert FICHE.contact_form in answer


# --- kill -9 ---------------------------------------------------------------------------------


def test_kill_9_in_the_middle_of_a_conversation_then_restart(prod):
    """Instance 1 is killed (SIGKILL) in the middle of a message (it holds the conversation's
    lock, its action in progress): the client's retry through nginx is answered by instance 2
    in context, once the dead instance's lock ticket has expired (TICKET_LOCK_LIFETIME); once
    restarted, instance 1 continues the same conversation in context (it is all in PostgreSQL)."""
    sender = new_sender("kill9")
    topology = prod.topology
    first = texts(prod.say(sender, "je veux faire une réclamation", base=prod.rasa_url(0)))
    assert first.startswith(label("reclamation")), first

    outcome: dict[str, object] = {}

    def in_flight() -> None:
        try:
            outcome["reply"] = prod.say(sender, "et par téléphone ?", base=prod.rasa_url(0), timeout=30)
        except requests.RequestException as error:
            outcome["error"] = error

    thread = threading.Thread(target=in_flight)
    with action_server_paused(prod):
        thread.start()
        assert wait_until(lambda: lock_tickets(prod, sender) == 1)
        time.sleep(0.3)  # NLU done, the action call waiting
        topology.kill_rasa(0, signal.SIGKILL)
    thread.join(timeout=60)
    assert "error" in outcome  # the connection died with the instance
    started = time.monotonic()
    answer = texts(prod.say(sender, "et par téléphone ?"))  # the client's retry
    assert answer.startswith(no_by("reclamation", "telephone")), answer
    assert time.monotonic() - started < 60

    topology.start_rasa(0)
    follow = texts(prod.say(sender, "et par mail ?", base=prod.rasa_url(0)))
    assert follow.startswith(yes_by("reclamation", "courrier")[0]) and has_facts(
        follow, yes_by("reclamation", "courrier")
    ), follow
    # the killed message was never saved: each message once, in order
    assert prod.wait_user_texts(
        sender, ["je veux faire une réclamation", "et par téléphone ?", "et par mail ?"]
    ) == ["je veux faire une réclamation", "et par téléphone ?", "et par mail ?"]


# --- an instance killed under load ----------------------------------------------------------

CONVERSATIONS = 16
SCRIPT = [q for q, _ in QUESTIONS] + ["je veux résilier", "et par mail ?"]
EXPECTED = dict(QUESTIONS)
EXPECTED["je veux résilier"] = [label("resiliation")]
EXPECTED["et par mail ?"] = [*yes_by("resiliation", "courrier"), FICHE.email_service_clientele]


def ask_with_retry(prod, sender: str, question: str, log: list[str]) -> str | None:
    """Like a client: retry a failed request (connection reset, 502, 429...) a few times."""
    for attempt in range(8):
        try:
            response = requests.post(
                f"{prod.url}/webhooks/rest/webhook", json={"sender": sender, "message": question}, timeout=90
            )
            if response.status_code == 200 and response.json():
                return texts(response.json())
            log.append(f"{sender}: HTTP {response.status_code}")
        except requests.RequestException as error:
            log.append(f"{sender}: {type(error).__name__}")
        time.sleep(0.5 * (attempt + 1))
    return None


def test_one_instance_killed_during_a_load_run(prod):
    """16 conversations of 8 messages at once through nginx; instance 2 is killed (SIGKILL)
    after a quarter of the messages. Every message is answered with its facts (client retry
    allowed) and every conversation is complete in PostgreSQL (a message whose answer was
    lost with the instance may be stored twice, never lost)."""
    topology = prod.topology
    assert all(topology.rasa_alive(i) for i in range(2))
    senders = [new_sender(f"load{i}") for i in range(CONVERSATIONS)]
    total = CONVERSATIONS * len(SCRIPT)
    answered: dict[tuple[str, int], str | None] = {}
    retries: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def conversation(sender: str) -> None:
        for index, question in enumerate(SCRIPT):
            answer = ask_with_retry(prod, sender, question, retries)
            with lock:
                answered[(sender, index)] = answer
                if len(answered) >= total // 4 and not killed.is_set():
                    killed.set()
                    threading.Thread(target=topology.kill_rasa, args=(1, signal.SIGKILL)).start()

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(CONVERSATIONS) as pool:
            list(pool.map(conversation, senders))
        elapsed = time.monotonic() - started
        assert killed.is_set() and not topology.rasa_alive(1)
    finally:
        if not topology.rasa_alive(1):
            topology.start_rasa(1)  # the shared topology whole again for the next tests

    wrong = [
        (s, SCRIPT[i], a)
        for (s, i), a in answered.items()
        if a is None or not has_facts(a, EXPECTED[SCRIPT[i]])
    ]
    assert not wrong, f"{len(wrong)} message(s) unanswered or wrong, e.g. {wrong[:3]}"
    for sender in senders:
        stored = prod.wait_user_texts(sender, SCRIPT)
        collapsed = [t for i, t in enumerate(stored) if i == 0 or t != stored[i - 1]]
        assert collapsed == SCRIPT, (sender, stored)
        assert len(stored) - len(SCRIPT) <= 1, (sender, stored)
        bots = [e for e in prod.events(sender) if e.get("event") == "bot"]
        assert len(bots) >= len(SCRIPT)
    print(f"\n{total} messages in {elapsed:.1f}s, {len(retries)} retried request(s) after the kill")
