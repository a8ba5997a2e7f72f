"""The console's side of "Cette réponse vous a-t-elle aidé ?" (issue 12, item 4): the 👍 / 👎
the customers give (a `/avis_utile` or `/avis_inutile` click, then the slot `avis` =
{"sujet", "note"}) in the insights (satisfaction per topic and channel, containment, the
daily chart), the list (filter and flag), the transcript, and after a purge or an erasure.

In-process like tests/test_console_app.py (whose event helpers it uses): Starlette's
TestClient on a scratch SQLite tracker store, no model, no server.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet
from starlette.testclient import TestClient

from console import auth, db, feedback, indexer, queries
from console.app import ref_key
from console.indexer import NOUMEA
from tests.test_console_app import (
    ADMIN,
    BASE_URL,
    EVENTS_DDL,
    FAST_SCRYPT_N,
    SECRET,
    console_app,
    conversation_path,
    listed,
    login,
    post_form,
    store,
    user,
)

DAY = 86400
# sender ids, by what each conversation is for (channel, when, feedback)
WEB_MIXED = "sio-avis-01"  # socketio, today: 👍 resiliation, 👎 horaires
FB_USELESS = "fb:avis-02"  # facebook, today: 👎 resiliation, then the slot cleared
REST_HAPPY = "rest-avis-03"  # rest, 2 days ago: 👍 horaires, code_puk, resiliation; contained
WEB_QUEUED = "sio-avis-04"  # socketio, today: not understood twice, the desk's queue; 👍 resiliation
FB_HUMAN = "fb:avis-05"  # facebook, yesterday: asked for a person (demander_humain), no feedback
REST_PLAIN = "rest-avis-06"  # rest, today: an answer, no feedback; contained
WEB_TYPED = "sio-avis-07"  # socketio, today: "ça m'aide pas" typed (NLU avis_inutile), code_puk
FB_MONTHLY = "fb:avis-08"  # facebook, 40 days ago 👎 horaires, today 👍 horaires
REST_OLD = "rest-avis-09"  # rest, 50 days ago: 👎 resiliation
TYPED_TEXT = "bof, ça m'aide pas vraiment"
QUESTIONS = {
    "resiliation": "comment résilier ma ligne pro ?",
    "horaires": "vous êtes ouverts à quelle heure ?",
    "code_puk": "où trouver mon code PUK ?",
}


def today_start() -> float:
    today = datetime.now(NOUMEA).date()
    return datetime(today.year, today.month, today.day, tzinfo=NOUMEA).timestamp()


def answered(topic: str, channel: str, ts: float) -> list[Event]:
    return [
        user(QUESTIONS[topic], topic, 0.95, channel, ts),
        ActionExecuted("action_repondre", timestamp=ts + 1),
        BotUttered(f"Réponse sur {topic}. Cette réponse vous a-t-elle aidé ?", {}, {}, ts + 1),
    ]


def judged(topic: str, note: str, channel: str, ts: float) -> list[Event]:
    """The question, the answer, then the customer's click as the assistant records it: the
    payload's user event, the action, its thanks, the slot (Rasa logs the bot's messages
    before the action's other events)."""
    return [
        *answered(topic, channel, ts),
        user(f"/avis_{note}", f"avis_{note}", 1.0, channel, ts + 5),
        ActionExecuted("action_enregistrer_avis", timestamp=ts + 6),
        BotUttered("Merci pour votre avis !", {}, {}, ts + 6),
        SlotSet("avis", {"sujet": topic, "note": note}, timestamp=ts + 6),
    ]


def conversations(t0: float) -> dict[str, list[Event]]:
    """t0: today's midnight in Nouméa."""
    d2, d1 = t0 - 2 * DAY, t0 - DAY
    return {
        WEB_MIXED: [
            *judged("resiliation", "utile", "socketio", t0 + 100),
            *judged("horaires", "inutile", "socketio", t0 + 120),
        ],
        FB_USELESS: [
            *judged("resiliation", "inutile", "facebook", t0 + 200),
            SlotSet("avis", None, timestamp=t0 + 210),
        ],
        REST_HAPPY: [
            *judged("horaires", "utile", "rest", d2 + 100),
            *judged("code_puk", "utile", "rest", d2 + 120),
            *judged("resiliation", "utile", "rest", d2 + 140),
        ],
        WEB_QUEUED: [
            user("xqzw blorf", "nlu_fallback", 0.4, "socketio", t0 + 300),
            ActionExecuted("action_clarifier", timestamp=t0 + 301),
            user("grumpf plop", "nlu_fallback", 0.4, "socketio", t0 + 302),
            ActionExecuted("action_clarifier", timestamp=t0 + 303),
            SlotSet("handoff", "waiting", timestamp=t0 + 303),
            SlotSet("handoff", None, timestamp=t0 + 320),
            *judged("resiliation", "utile", "socketio", t0 + 330),
        ],
        FB_HUMAN: [
            user("je veux parler à un conseiller", "demander_humain", 0.97, "facebook", d1 + 100),
            ActionExecuted("action_transfert_humain", timestamp=d1 + 101),
            BotUttered("Le service clientèle est fermé.", {}, {}, d1 + 101),
        ],
        REST_PLAIN: answered("code_puk", "rest", t0 + 400),
        WEB_TYPED: [
            *answered("code_puk", "socketio", t0 + 500),
            user(TYPED_TEXT, "avis_inutile", 0.81, "socketio", t0 + 505),
            ActionExecuted("action_enregistrer_avis", timestamp=t0 + 506),
            SlotSet("avis", {"sujet": "code_puk", "note": "inutile"}, timestamp=t0 + 506),
        ],
        FB_MONTHLY: [
            *judged("horaires", "inutile", "facebook", t0 - 40 * DAY),
            *judged("horaires", "utile", "facebook", t0 + 600),
        ],
        REST_OLD: judged("resiliation", "inutile", "rest", t0 - 50 * DAY),
    }


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("feedback") / "tracker.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for statement in EVENTS_DDL:
            conn.execute(sa.text(statement))
    for sender_id, events in conversations(today_start()).items():
        store(engine, sender_id, events)
    db.create_tables(engine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
        auth.upsert_user(engine, ADMIN[0], "admin", ADMIN[1])
    engine.dispose()
    return path


@pytest.fixture
def db_path(template_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tracker.db"
    shutil.copyfile(template_db, path)
    return path


@pytest.fixture
def engine(db_path: Path) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    yield engine
    engine.dispose()


@contextlib.contextmanager
def admin_client(db_path: Path) -> Iterator[TestClient]:
    app = console_app(db_path)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        assert login(client, ADMIN).status_code == 303
        yield client
    app.state.engine.dispose()


@pytest.fixture
def admin(db_path: Path) -> Iterator[TestClient]:
    with admin_client(db_path) as client:
        yield client


@pytest.fixture(scope="module")
def reader(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """For the tests that only read."""
    path = tmp_path_factory.mktemp("feedback-reader") / "tracker.db"
    shutil.copyfile(template_db, path)
    with admin_client(path) as client:
        yield client


def row(name: str, useful: int, useless: int, rate: str) -> str:
    """A row of the tables "Satisfaction par sujet" and "par canal"."""
    return (
        f'<tr><th scope="row">{name}</th><td class="num">{useful}</td>'
        f'<td class="num">{useless}</td><td class="num">{rate}</td></tr>'
    )


def table(page: str, caption: str) -> str:
    found = re.search(rf"<caption>{caption}</caption>.*?</table>", page, re.DOTALL)
    assert found, caption
    return found.group(0)


def table_rows(page: str, caption: str) -> list[str]:
    return re.findall(r"<tr><th scope=\"row\">.*?</tr>", table(page, caption))


def rates_chart(page: str) -> str:
    found = re.search(r'<svg[^>]*aria-labelledby="rates-title rates-desc".*?</svg>', page, re.DOTALL)
    assert found, "no satisfaction chart"
    return found.group(0)


def day_label(days_ago: int) -> str:
    return f"{datetime.now(NOUMEA).date() - timedelta(days=days_ago):%d/%m}"


def feedback_rows(engine: sa.engine.Engine) -> dict[str, list[tuple[str | None, str]]]:
    """console_feedback, per sender: (sujet, note) in event order."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT sender_id, sujet, note FROM console_feedback ORDER BY event_id")
        ).all()
    out: dict[str, list[tuple[str | None, str]]] = {}
    for sender_id, sujet, note in rows:
        out.setdefault(sender_id, []).append((sujet, note))
    return out


# --- insights -----------------------------------------------------------------------------


def test_insights_give_satisfaction_per_topic_and_channel_and_containment(reader):
    page = reader.get("/insights", params={"days": "7"}).text
    # 6 👍 and 3 👎 in the week (FB_MONTHLY's 👎 of 40 days ago and REST_OLD's are older)
    assert (
        "<strong>66,7 %</strong><span>satisfaction : réponses jugées utiles (6 👍 sur 9 avis)</span>" in page
    )
    assert "<strong>3</strong><span>réponses jugées inutiles (👎)" in page
    assert 'href="/conversations?avis=inutile">voir les conversations</a>' in page
    # 7 conversations started in the week; only REST_HAPPY and REST_PLAIN had no person
    # (WEB_QUEUED's queue slot, FB_HUMAN's demander_humain) and no 👎
    assert (
        "<strong>28,6 %</strong><span>autonomie : conversations sans conseiller ni 👎 (2 sur 7)</span>"
        in page
    )
    assert table_rows(page, "Satisfaction par sujet") == [
        row("résiliation", 3, 1, "75,0 %"),
        row("horaires", 2, 1, "66,7 %"),
        row("code PUK", 1, 1, "50,0 %"),
    ]
    assert table_rows(page, "Satisfaction par canal") == [
        row("socketio", 2, 2, "50,0 %"),
        row("rest", 3, 0, "100,0 %"),
        row("facebook", 1, 1, "50,0 %"),
    ]


def test_the_period_counts_feedback_by_its_day_and_conversations_by_their_start(reader):
    page = reader.get("/insights", params={"days": "0"}).text  # all time
    assert "(6 👍 sur 11 avis)" in page and "<strong>54,5 %</strong>" in page
    # FB_MONTHLY and REST_OLD, started 40 and 50 days ago, each with a 👎
    assert "(2 sur 9)</span>" in page
    assert row("horaires", 2, 2, "50,0 %") in table(page, "Satisfaction par sujet")
    assert row("rest", 3, 1, "75,0 %") in table(page, "Satisfaction par canal")


def test_the_daily_chart_has_both_rates_and_gaps_for_days_without_data(reader):
    chart = rates_chart(reader.get("/insights", params={"days": "7"}).text)
    assert '<title id="rates-title">Satisfaction et autonomie par jour</title>' in chart
    assert 'role="img"' in chart and '<desc id="rates-desc">' in chart
    # satisfaction: 2 days ago and today (no feedback yesterday: no point, so no line)
    assert chart.count("<circle") == 2
    assert f"<title>{day_label(2)} · Satisfaction : 100 % (3 utile(s) sur 3 avis)</title>" in chart
    assert f"<title>{day_label(0)} · Satisfaction : 50 % (3 utile(s) sur 6 avis)</title>" in chart
    # containment: a conversation started on each of the last three days, one line through them
    assert chart.count("<rect") == 3
    assert f"<title>{day_label(2)} · Autonomie : 100 % (1 sur 1 conversation(s))</title>" in chart
    assert f"<title>{day_label(1)} · Autonomie : 0 % (0 sur 1 conversation(s))</title>" in chart
    assert f"<title>{day_label(0)} · Autonomie : 20 % (1 sur 5 conversation(s))</title>" in chart
    lines = re.findall(r"<polyline [^>]*>", chart)
    assert len(lines) == 1 and 'stroke-dasharray="6 4"' in lines[0]
    assert len(lines[0].split('points="')[1].split('"')[0].split()) == 3
    for days_ago in range(3, 7):  # days without data: labelled on the axis, no point
        assert f"<title>{day_label(days_ago)} ·" not in chart


def test_insights_without_feedback_show_dashes_not_errors(admin, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE action_name = 'avis' OR data LIKE '%/avis_%'"))
    page = admin.get("/insights", params={"days": "7"})
    assert page.status_code == 200
    assert (
        "<strong>—</strong><span>satisfaction : réponses jugées utiles (0 👍 sur 0 avis)</span>" in page.text
    )
    assert "aucun avis sur la période" in table(page.text, "Satisfaction par sujet")
    assert rates_chart(page.text).count("<circle") == 0


# --- list and transcript ------------------------------------------------------------------


EVERYONE = [  # newest start first, as the list shows them
    WEB_TYPED,
    REST_PLAIN,
    WEB_QUEUED,
    FB_USELESS,
    WEB_MIXED,
    FB_HUMAN,
    REST_HAPPY,
    FB_MONTHLY,
    REST_OLD,
]
WITH_USELESS = [WEB_TYPED, FB_USELESS, WEB_MIXED, FB_MONTHLY, REST_OLD]


def test_the_useless_filter_combines_with_the_others(reader):
    assert listed(reader) == EVERYONE
    assert listed(reader, avis="inutile") == WITH_USELESS
    assert listed(reader, avis="inutile", channel="facebook") == [FB_USELESS, FB_MONTHLY]
    assert listed(reader, avis="inutile", intent="resiliation") == [FB_USELESS, WEB_MIXED, REST_OLD]
    assert listed(reader, avis="inutile", flag="fallback") == []
    page = reader.get("/conversations", params={"avis": "inutile", "channel": "facebook"}).text
    assert '<input type="checkbox" name="avis" value="inutile" checked>' in page
    assert "2 trouvées" in page
    assert listed(reader, avis="autre chose") == EVERYONE  # an unknown value filters nothing


def test_handoff_counts_the_handoff_slot_as_well_as_demander_humain(reader):
    assert listed(reader, flag="handoff") == [WEB_QUEUED, FB_HUMAN]


def test_the_list_flags_conversations_with_a_useless_answer(reader):
    page = reader.get("/conversations").text
    rows = re.findall(
        r'<tr>\s*<td class="nowrap"><a href="/conversations/([0-9a-f]{32})">(.*?)</tr>', page, re.DOTALL
    )
    assert len(rows) == len(EVERYONE)
    flagged = [
        queries.sender_of_ref(reader.app.state.engine, ref)
        for ref, cells in rows
        if '<span class="badge inutile"' in cells
    ]
    assert flagged == WITH_USELESS
    assert 'title="Le client a jugé 1 réponse(s) inutile(s) (👎)">👎 inutile</span>' in page


def test_the_transcript_shows_feedback_readably(reader):
    page = reader.get(conversation_path(WEB_MIXED)).text
    assert '<p class="text">👍 réponse jugée utile (résiliation)</p>' in page
    assert '<p class="text">👎 réponse jugée inutile (horaires)</p>' in page
    assert page.count("bouton « Cette réponse vous a-t-elle aidé ? »") == 2
    # neither the payload nor the raw slot
    assert "/avis_" not in page and "slot <code>avis</code>" not in page and "&#39;note&#39;" not in page
    assert "👎 inutile</span>" in page  # the flag, beside the summary
    # a 👎 typed rather than clicked: the message with its NLU, then what the assistant recorded
    typed = reader.get(conversation_path(WEB_TYPED)).text
    assert TYPED_TEXT.replace("'", "&#39;") in typed and "<code>avis_inutile</code>" in typed
    assert "avis du client : 👎 réponse jugée inutile (code PUK)</p>" in typed
    # the slot cleared after the click: nothing shown for it
    cleared = reader.get(conversation_path(FB_USELESS)).text
    assert '<p class="text">👎 réponse jugée inutile (résiliation)</p>' in cleared
    assert "slot <code>avis</code>" not in cleared and "avis du client" not in cleared


# --- purge, erasure, an older index -----------------------------------------------------


def test_the_purge_keeps_feedback_and_summaries_consistent(admin, engine):
    preview = admin.get("/admin/purge", params={"days": "35"}).text
    cutoff = re.search(r'name="cutoff" value="([^"]+)"', preview).group(1)
    done = post_form(admin, "/admin", "/admin/purge", days="35", cutoff=cutoff, confirm="yes")
    assert "dont 1 entièrement." in done.text  # REST_OLD; FB_MONTHLY keeps today's part
    rows = feedback_rows(engine)
    assert REST_OLD not in rows
    assert rows[FB_MONTHLY] == [("horaires", "utile")]
    assert FB_MONTHLY not in listed(admin, avis="inutile")
    assert listed(admin, avis="inutile") == [WEB_TYPED, FB_USELESS, WEB_MIXED]
    with engine.connect() as conn:
        summary = conn.execute(
            sa.text("SELECT n_utile, n_inutile, start_day FROM console_conversations WHERE sender_id = :s"),
            {"s": FB_MONTHLY},
        ).one()
    assert tuple(summary) == (1, 0, datetime.now(NOUMEA).date().isoformat())
    # FB_MONTHLY now starts today with no 👎 and no person: contained, in this week's figures
    page = admin.get("/insights", params={"days": "7"}).text
    assert "(3 sur 8)</span>" in page and "<strong>37,5 %</strong>" in page
    page = admin.get("/insights", params={"days": "0"}).text
    assert "(6 👍 sur 9 avis)" in page


def test_erasure_takes_the_customers_feedback_with_it(admin, engine):
    ref = queries.conversation_ref(ref_key(SECRET), WEB_MIXED)
    listed(admin)  # the list records the references
    done = post_form(admin, "/admin", "/admin/erase", conversation=ref, confirm="yes")
    assert done.status_code == 200 and "Effacé :" in done.text
    assert WEB_MIXED not in feedback_rows(engine)
    page = admin.get("/insights", params={"days": "7"}).text
    assert "(5 👍 sur 7 avis)" in page
    assert row("socketio", 1, 1, "50,0 %") in table(page, "Satisfaction par canal")
    assert row("horaires", 2, 0, "100,0 %") in table(page, "Satisfaction par sujet")
    counts = queries.erase_sender(admin.app.state.engine, FB_USELESS)
    assert counts["feedback"] == 1 and FB_USELESS not in feedback_rows(engine)


OLD_INDEX = (
    # the derived tables as the console wrote them before feedback (index version 1)
    "CREATE TABLE console_conversations (sender_id VARCHAR(255) PRIMARY KEY, channel VARCHAR(64) "
    "NOT NULL, start_ts FLOAT NOT NULL, last_ts FLOAT NOT NULL, n_user INTEGER NOT NULL, n_bot "
    "INTEGER NOT NULL, min_confidence FLOAT, has_fallback BOOLEAN NOT NULL, has_handoff BOOLEAN "
    "NOT NULL, has_out_of_scope BOOLEAN NOT NULL, preview TEXT NOT NULL, search_text TEXT NOT "
    "NULL, max_event_id INTEGER NOT NULL)",
    "CREATE TABLE console_state (key VARCHAR(64) PRIMARY KEY, value VARCHAR(255) NOT NULL)",
    "INSERT INTO console_state VALUES ('last_event_id', (SELECT max(id) FROM events))",
    # WEB_QUEUED as it was folded then: no handoff (the slot was not counted)
    f"INSERT INTO console_conversations VALUES ('{WEB_QUEUED}', 'socketio', 1, 2, 2, 0, 0.4, 1, 0, 0, "
    "'xqzw blorf', '', (SELECT max(id) FROM events))",
)


def test_an_index_built_by_an_older_console_is_rebuilt(tmp_path):
    path = tmp_path / "tracker.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for statement in EVENTS_DDL:
            conn.execute(sa.text(statement))
    for sender_id, events in conversations(today_start()).items():
        store(engine, sender_id, events)
    with engine.begin() as conn:
        for statement in OLD_INDEX:
            conn.execute(sa.text(statement))
    db.create_tables(engine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
        auth.upsert_user(engine, ADMIN[0], "admin", ADMIN[1])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM console_conversations")).scalar() == 0
        version = conn.execute(
            sa.text("SELECT value FROM console_state WHERE key = 'index_version'")
        ).scalar()
    assert version == str(db.INDEX_VERSION)
    engine.dispose()
    with admin_client(path) as client:
        assert listed(client, flag="handoff") == [WEB_QUEUED, FB_HUMAN]
        assert len(listed(client, avis="inutile")) == 5
        assert "(6 👍 sur 9 avis)" in client.get("/insights", params={"days": "7"}).text
        # a rebuild from the command line keeps the version: no second rebuild at the next start
        with client.app.state.engine.begin() as conn:
            indexer.reset(conn)
        assert queries.list_conversations(client.app.state.engine, queries.Filters(), 1, 50)[1] == 9
    check = sa.create_engine(f"sqlite:///{path}")
    with check.connect() as conn:
        assert conn.execute(
            sa.text("SELECT value FROM console_state WHERE key = 'index_version'")
        ).scalar() == str(db.INDEX_VERSION)
    check.dispose()


def test_feedback_never_counts_twice_when_events_are_folded_in_several_batches(admin, engine):
    """The pages fold new events as they come: a click then its slot arriving later."""
    listed(admin)
    t = time.time()
    store(engine, REST_PLAIN, judged("code_puk", "inutile", "rest", t)[:4])
    assert REST_PLAIN not in listed(admin, avis="inutile")
    store(engine, REST_PLAIN, [SlotSet("avis", {"sujet": "code_puk", "note": "inutile"}, timestamp=t + 6)])
    assert REST_PLAIN in listed(admin, avis="inutile")
    listed(admin)
    assert feedback_rows(engine)[REST_PLAIN] == [("code_puk", "inutile")]
    assert "(6 👍 sur 10 avis)" in admin.get("/insights", params={"days": "7"}).text


def test_the_start_day_follows_the_earliest_event(admin, engine):
    # two Rasa instances whose clocks differ: an event stored later may be timed earlier
    listed(admin)
    store(engine, REST_PLAIN, [user("encore là ?", "greet", 0.9, "rest", today_start() - 3 * DAY)])
    listed(admin)
    with engine.connect() as conn:
        start_day = conn.execute(
            sa.text("SELECT start_day FROM console_conversations WHERE sender_id = :s"), {"s": REST_PLAIN}
        ).scalar()
    assert start_day == (datetime.now(NOUMEA).date() - timedelta(days=3)).isoformat()


def test_only_the_buttons_payloads_are_clicks():
    assert feedback.click_note("/avis_utile") == "utile"
    assert feedback.click_note(' /avis_inutile{"sujet":"horaires"} ') == "inutile"
    for typed in ("/avis_utile merci", "avis utile", "/avis_super", "c'est utile"):
        assert feedback.click_note(typed) is None, typed
