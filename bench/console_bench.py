"""How fast the review console is with 100,000 events.

Real events first: those of a tracker store the assistant wrote (--source), or, without one,
of conversations sent now to the running assistant (harness/servers.py starts it). They are
copied in bulk into a new database (SQLite file, or PostgreSQL with --postgres) until it holds
--events events: each copy under a new sender id, moved back in time (spread over 90 days) and
given one of the three channels. Then: the first indexing, and each page timed over HTTP
against the real console (median of --repeat requests).

    .venv/bin/python bench/console_bench.py                     # 100,000 events, SQLite
    .venv/bin/python bench/console_bench.py --postgres          # the same on PostgreSQL
    .venv/bin/python bench/console_bench.py --source sqlite:///tracker.db --events 200000
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from console import db, indexer  # noqa: E402
from harness.console import SCRIPT, StaffClient, produce_conversations, running_console, staff_user  # noqa: E402
from harness.postgres import scratch_database  # noqa: E402
from harness.servers import running_servers  # noqa: E402

MORE = {  # a few more real questions, for a mix of intents
    "horaires": ["vous êtes ouverts quand ?"],
    "mail": ["quel est votre adresse mail ?"],
    "tarifs": ["où sont les tarifs ?"],
    "etranger": ["comment vous appeler depuis la France ?"],
    "perte": ["on m'a volé mon portable", "par téléphone"],
}
CHANNELS = ["rest", "socketio", "facebook"]


def source_events(source: str, workdir: Path) -> list[tuple]:
    if not source:
        print("no --source: talking to the assistant for real events...", file=sys.stderr)
        with running_servers(workdir) as servers:
            prefix = "bench-" + uuid.uuid4().hex[:6]
            produce_conversations(servers.say, prefix, {**SCRIPT, **MORE})
        source = f"sqlite:///{servers.tracker_db}"
    engine = sa.create_engine(source)
    e = db.events.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(e.sender_id, e.type_name, e.timestamp, e.intent_name, e.action_name, e.data).order_by(
                e.id
            )
        ).all()
    engine.dispose()
    if not rows:
        raise SystemExit(f"{source}: no events")
    return [tuple(r) for r in rows]


def fill(engine, rows: list[tuple], target: int) -> int:
    """Copies of the source conversations until `target` events."""
    conversations: dict[str, list[tuple]] = {}
    for row in rows:
        conversations.setdefault(row[0], []).append(row)
    db.events.create(engine, checkfirst=True)
    sa.Index("ix_events_sender_id", db.events.c.sender_id).create(engine, checkfirst=True)  # as Rasa has it
    rng = random.Random(42)
    now = time.time()
    total, batch, copy = 0, [], 0
    with engine.begin() as conn:
        while total < target:
            copy += 1
            for sender, events in conversations.items():
                first = min(r[2] or now for r in events)
                shift = now - rng.uniform(0, 90 * 86400) - first  # somewhere in the last 90 days
                channel = rng.choice(CHANNELS)
                new_sender = f"{sender}-{copy}"
                for _, type_name, ts, intent, action, data in events:
                    if type_name == "user":
                        parsed = json.loads(data)
                        parsed["input_channel"] = channel
                        data = json.dumps(parsed)
                    batch.append(
                        dict(
                            sender_id=new_sender,
                            type_name=type_name,
                            timestamp=(ts or first) + shift,
                            intent_name=intent,
                            action_name=action,
                            data=data,
                        )
                    )
                    total += 1
                if len(batch) >= 5000:
                    conn.execute(db.events.insert(), batch)
                    batch = []
                if total >= target:
                    break
        if batch:
            conn.execute(db.events.insert(), batch)
    return total


def timed(client: StaffClient, path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--source", default="", help="SQLAlchemy URL of a tracker store the assistant wrote")
    parser.add_argument("--postgres", action="store_true", help="bench on a new PostgreSQL database")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="console-bench-")))
        rows = source_events(args.source, workdir)
        if args.postgres:
            db_url = stack.enter_context(scratch_database("console_bench")).url
        else:
            db_url = f"sqlite:///{workdir / 'bench.db'}"
        engine = db.make_engine(db_url)
        stack.callback(engine.dispose)
        started = time.perf_counter()
        total = fill(engine, rows, args.events)
        print(
            f"{total} events copied from {len(rows)} real ones in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        db.create_tables(engine)
        started = time.perf_counter()
        indexer.sync(engine)
        first_index = time.perf_counter() - started
        with engine.connect() as conn:
            n_conv = conn.execute(sa.select(sa.func.count()).select_from(db.conversations)).scalar()
        password = secrets.token_urlsafe(12)
        assert staff_user(db_url, "bench", "admin", password).returncode == 0
        console = stack.enter_context(running_console(db_url, workdir / "console.log"))
        client = StaffClient(console.url)
        assert client.login("bench", password).status_code == 303
        with engine.connect() as conn:
            sender = conn.execute(
                sa.select(db.conversations.c.sender_id).order_by(db.conversations.c.n_user.desc()).limit(1)
            ).scalar()
        from urllib.parse import quote

        pages = [
            ("list, page 1", "/conversations"),
            ("list, page 100", "/conversations?page=100"),
            ("confidence < 0.5", "/conversations?below=0.5"),
            ("fallback or handoff", "/conversations?flag=fallback_or_handoff"),
            ("intent code_puk", "/conversations?intent=code_puk"),
            ("channel facebook", "/conversations?channel=facebook"),
            ("text search", "/conversations?q=" + quote("forfait")),
            (
                "last 7 days, socketio, < 0.9",
                "/conversations?channel=socketio&below=0.9&date_from="
                + time.strftime("%Y-%m-%d", time.localtime(time.time() - 7 * 86400)),
            ),
            ("one conversation", console.conversation_path(sender)),
            ("insights, 30 days", "/insights?days=30"),
            ("insights, all", "/insights?days=0"),
            ("purge preview", "/admin/purge?days=30"),
        ]
        dialect = "PostgreSQL" if args.postgres else "SQLite"
        print(f"\n### Console with {total:,} events ({n_conv:,} conversations), {dialect}\n")
        print(
            f"First indexing of the events (once, at the first page after a start on a new database): "
            f"{first_index:.1f} s\n"
        )
        print("| page | median time (ms) |\n| --- | ---: |")
        for label, path in pages:
            print(f"| {label} | {timed(client, path, args.repeat):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
