"""Every custom action, with CollectingDispatcher and Tracker fixtures (no Rasa server).

Expected facts come from the seed document or from explicit checks, not from the code."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from actions import actions as actions_module
from actions import handoff
from actions.actions import ActionAccueil, ActionRepondre, ActionRetourAssistant, ActionTransfertHumain
from actions.answers import INFO_ANSWERS
from actions.fiche import CHANNELS, PROCEDURES
from actions.hours import NOUMEA
from tests.conftest import make_tracker, normalise, run_action

FACT = re.compile(r"[\w.-]+@[\w.-]+\w|https?://[^\s,)]+[^\s,).]|\+687[ 0-9]+\d|\b\d{4}\b|\b\d{1,2}h\d{0,2}\b")


def run(action, tracker):
    dispatcher, events = run_action(action, tracker)
    assert len(dispatcher.messages) == 1
    return dispatcher.messages[0], events


def canal(value):
    return [{"entity": "canal", "value": value}]


def assert_facts_in_seed(text, seed_text):
    seed = normalise(seed_text).replace("https://", "")
    for fact in FACT.findall(text):
        assert fact.replace("https://", "") in seed, f"{fact!r} is not in the fiche"


def clocked(action_class, when):
    action = action_class()
    action.clock = lambda: when
    return action


# --- procedures x channels ----------------------------------------------------------------


@pytest.mark.parametrize("procedure", PROCEDURES)
def test_procedure_without_channel_lists_every_channel(procedure, fiche, seed_text):
    message, events = run(ActionRepondre(), make_tracker(procedure))
    text = message["text"]
    proc = fiche.procedures[procedure]
    for channel in CHANNELS:
        assert fiche.channels[channel] in text
        assert proc.cells[channel].answer in text
    working = [c for c in CHANNELS if proc.cells[c].status != "unavailable"]
    payloads = [b["payload"] for b in message["buttons"]]
    if len(working) > 1:
        assert payloads == [f'/{procedure}{{"canal":"{c}"}}' for c in working]
    assert ("NON —" in text) == any(proc.cells[c].status == "unavailable" for c in CHANNELS)
    assert "26/07/2021" in text
    assert_facts_in_seed(text, seed_text)
    assert {"event": "slot", "timestamp": None, "name": "procedure", "value": procedure} in events
    assert {"event": "slot", "timestamp": None, "name": "sujet", "value": procedure} in events


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("procedure", PROCEDURES)
def test_procedure_with_channel(procedure, channel, fiche, seed_text):
    """The first line answers in one sentence (bold in the Markdown sent): "Oui, par ..." with
    the cell, the restricted cell itself, or "Non, pas par ..." with where it works instead."""
    message, _ = run(ActionRepondre(), make_tracker(procedure, canal(channel)))
    text = message["text"]
    cell = fiche.procedures[procedure].cells[channel]
    first_line = text.splitlines()[0]
    sent_first = message["markdown"].split("\n")[0]
    assert sent_first.startswith("**") and sent_first.endswith("**"), sent_first
    phrase = fiche.channels[channel].lower()
    if cell.status == "unavailable":
        assert first_line.lower().startswith(f"non, pas {phrase} : ")
        assert cell.answer in text and "NON, pas par ce canal" in text
        others = [
            c
            for c in CHANNELS
            if c != channel and fiche.procedures[procedure].cells[c].status != "unavailable"
        ]
        assert others, "a struck channel always comes with the channels that work"
        for other in others:
            assert fiche.channels[other].lower() in first_line.lower()
            assert fiche.procedures[procedure].cells[other].answer in text
    elif cell.status == "restricted":
        assert cell.answer in first_line
        assert "uniquement" in first_line.lower()
    else:
        assert cell.answer in first_line
        assert first_line.lower().startswith(f"oui, {phrase} : ")
    assert_facts_in_seed(text, seed_text)


# Literal expectations for the cases a customer must never get wrong (read off the seed).
@pytest.mark.parametrize(
    "procedure, channel, present, absent",
    [
        ("code_puk", "telephone", ["NON", "pièce d'identité", "formulaire de contact"], []),
        (
            "code_puk",
            None,
            [
                "pièce d'identité",
                "formulaire de contact",
                "NON — le code PUK n'est pas communiqué par téléphone",
            ],
            [],
        ),
        ("resiliation", "telephone", ["NON", "1000@opt.nc", "formulaire à remplir sur place"], []),
        ("resiliation", "courrier", ["1000@opt.nc", "https://www.opt.nc"], ["NON"]),
        ("reclamation", "agence", ["agence-entreprises@opt.nc"], ["NON"]),
        ("reclamation", "telephone", ["NON", "1000@opt.nc"], []),
        ("support_technique", "courrier", ["NON", "1000", "1016"], []),
        ("perte_vol", "telephone", ["suspension de la ligne", "1000", "7h30 à 15h45"], ["NON"]),
        ("perte_vol", "agence", ["carte SIM", "9 rue du Général Gallieni"], []),
        ("blocage_ligne", "courrier", ["uniquement en cas de perte ou de vol"], ["NON"]),
        ("changement_offre", "courrier", ["Forfait M"], ["NON"]),
        ("souscription", "agence", ["rendez-vous"], ["NON"]),
    ],
)
def test_key_answers(procedure, channel, present, absent):
    message, _ = run(ActionRepondre(), make_tracker(procedure, canal(channel) if channel else []))
    for part in present:
        assert part in message["text"]
    for part in absent:
        assert part not in message["text"]


def test_follow_up_channel_uses_the_last_procedure(fiche):
    tracker = make_tracker("preciser_canal", canal("courrier"), slots={"procedure": "resiliation"})
    message, events = run(ActionRepondre(), tracker)
    assert message["text"].startswith("Oui, par courrier, mail ou internet : à 1000@opt.nc")
    assert "Démarche : Résiliation." in message["text"]
    assert {"event": "slot", "timestamp": None, "name": "procedure", "value": "resiliation"} in events


def test_follow_up_channel_without_context_gives_that_channels_contacts():
    message, _ = run(ActionRepondre(), make_tracker("preciser_canal", canal("telephone")))
    assert "Nos numéros" in message["text"] and "1000" in message["text"]
    message, _ = run(ActionRepondre(), make_tracker("preciser_canal", canal("courrier")))
    assert "1000@opt.nc" in message["text"] and "BP 40001" in message["text"]


def test_follow_up_without_channel_nor_context_asks_which_procedure():
    message, events = run(ActionRepondre(), make_tracker("preciser_canal"))
    assert "Pour quelle démarche" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == [f"/{p}" for p in PROCEDURES]
    assert events == []


def test_unknown_channel_value_gives_the_overview(fiche):
    message, _ = run(ActionRepondre(), make_tracker("code_puk", canal("pigeon voyageur")))
    assert all(fiche.channels[c] in message["text"] for c in CHANNELS)


# --- opening hours at fixed instants (Nouméa time) -----------------------------------------


def at(*args):
    return datetime(*args, tzinfo=NOUMEA)


def hours(when, entities=()):
    message, _ = run(clocked(ActionRepondre, when), make_tracker("horaires", list(entities)))
    return message["text"]


def test_weekday_10h_both_open():
    text = hours(at(2026, 11, 30, 10, 0))  # a Monday
    assert "Il est 10h à Nouméa (lundi 30/11)" in text
    assert "au 1000 : du lundi au vendredi de 7h30 à 15h45 — ouvert en ce moment" in text
    assert "au 1016 : du lundi au vendredi de 7h45 à 15h30 — ouvert en ce moment" in text
    assert "1012" not in text


def test_7h40_only_1000_open():
    text = hours(at(2026, 11, 30, 7, 40))
    assert "au 1000 : du lundi au vendredi de 7h30 à 15h45 — ouvert en ce moment" in text
    assert (
        "au 1016 : du lundi au vendredi de 7h45 à 15h30 — fermé en ce moment ; réouverture aujourd'hui à 7h45"
        in text
    )
    assert "le 1012 (Service de renseignements téléphoniques) répond 24h/24 et 7j/7" in text


def test_15h50_both_closed_reopen_tomorrow():
    text = hours(at(2026, 12, 1, 15, 50))  # Tuesday
    assert (
        "1000 : du lundi au vendredi de 7h30 à 15h45 — fermé en ce moment ; réouverture demain mercredi à 7h30"
        in text
    )
    assert (
        "1016 : du lundi au vendredi de 7h45 à 15h30 — fermé en ce moment ; réouverture demain mercredi à 7h45"
        in text
    )
    assert "1012" in text


def test_friday_evening_reopens_monday():
    text = hours(at(2026, 12, 4, 16, 0))
    assert "réouverture lundi 07/12 à 7h30" in text


def test_saturday_closed_until_monday():
    text = hours(at(2026, 11, 28, 10, 0))
    assert "(samedi 28/11)" in text
    assert "fermé en ce moment ; réouverture lundi 30/11 à 7h30" in text
    assert "24h/24 et 7j/7" in text


def test_public_holiday_closed():
    # 24 September: Fête de la Citoyenneté, a New Caledonian public holiday (a Thursday in 2026)
    text = hours(at(2026, 9, 24, 10, 0))
    assert (
        "fermé en ce moment (jour férié : Fête de la Citoyenneté) ; réouverture demain vendredi à 7h30"
        in text
    )


def test_holiday_before_weekend_skips_to_monday():
    # Friday 25 December 2026 is Christmas: next opening Monday 28/12
    text = hours(at(2026, 12, 24, 16, 0))
    assert "réouverture lundi 28/12 à 7h30" in text


def test_night_gives_1012():
    text = hours(at(2026, 12, 2, 23, 15))  # Wednesday
    assert "fermé en ce moment ; réouverture demain jeudi à 7h30" in text
    assert "le 1012 (Service de renseignements téléphoniques) répond 24h/24 et 7j/7" in text


def test_hours_of_one_service_and_of_the_agency():
    text = hours(at(2026, 11, 30, 10, 0), [{"entity": "service", "value": "1016"}])
    assert "1016" in text and "au 1000" not in text
    text = hours(at(2026, 11, 30, 10, 0), [{"entity": "canal", "value": "agence"}])
    assert "1016" in text and "au 1000" not in text
    text = hours(at(2026, 11, 28, 3, 0), [{"entity": "service", "value": "1012"}])
    assert "1012 : 24h/24 et 7j/7" in text and "réouverture" not in text


def test_utc_clock_is_converted_to_noumea():

    text = hours(datetime(2026, 11, 29, 23, 0, tzinfo=UTC))  # = Monday 10:00 in Nouméa
    assert "Il est 10h à Nouméa (lundi 30/11)" in text


# --- information, handoff, clarification ---------------------------------------------------


@pytest.mark.parametrize("intent", sorted(INFO_ANSWERS))
def test_info_answers_carry_fiche_facts(intent, seed_text):
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), make_tracker(intent))
    text = message["text"]
    assert "Source :" in text
    assert_facts_in_seed(text, seed_text)


@pytest.mark.parametrize(
    "intent, expected",
    [
        ("contact_telephone", ["1000", "1016", "1012", "+687 26 87 70"]),
        ("contact_email", ["1000@opt.nc", "agence-entreprises@opt.nc"]),
        ("contact_adresse", ["9 rue du Général Gallieni, Nouméa", "BP 40001, 98865 NOUMEA CEDEX"]),
        ("contact_etranger", ["+687 26 87 70", "appel local", "mes-documents-telecharger-mobile"]),
        ("contact_forum", ["optetvous.nc"]),
        ("contact_chat", ["www.opt.nc", "Messenger"]),
        (
            "suivi_conso",
            [
                "1088 : oui",
                "application smartphone Mobilis : non",
                "espace client web (depuis PC ou mobile) : non",
            ],
        ),
        ("delai_retablissement", ["4 jours", "compensation"]),
        ("cout_appel_service_client", ["inclus dans le forfait"]),
        ("guide_tarifaire", ["https://www.opt.nc/particuliers/mobile/mes-documents-telecharger-mobile"]),
    ],
)
def test_info_answer_content(intent, expected):
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), make_tracker(intent))
    for part in expected:
        assert part in message["text"]


def test_phone_contact_for_one_service():
    tracker = make_tracker("contact_telephone", [{"entity": "service", "value": "1012"}])
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), tracker)
    assert "1012" in message["text"] and "au 1000" not in message["text"]


def test_handoff_open_and_closed():
    open_text = run(clocked(ActionTransfertHumain, at(2026, 11, 30, 10, 0)), make_tracker("demander_humain"))[
        0
    ]["text"]
    assert "1000" in open_text and "ouvert en ce moment" in open_text
    assert "1000@opt.nc" in open_text and "9 rue du Général Gallieni" in open_text
    closed = run(clocked(ActionTransfertHumain, at(2026, 11, 28, 10, 0)), make_tracker("demander_humain"))[0][
        "text"
    ]
    assert "fermé en ce moment ; réouverture lundi 30/11 à 7h30" in closed
    assert "1012" in closed


# --- the first message ----------------------------------------------------------------------


def test_welcome_says_bot_privacy_and_offers_the_common_questions(monkeypatch):
    monkeypatch.setattr(actions_module, "RETENTION_DAYS", 180)
    monkeypatch.setattr(actions_module, "PRIVACY_URL", "https://chat.example.nc/confidentialite")
    message, events = run(ActionAccueil(), make_tracker("demarrer"))
    text = message["text"]
    assert "assistant automatique" in text and events == []
    assert "vos messages sont conservés 180 jours, puis effacés" in text
    assert text.endswith("En savoir plus : https://chat.example.nc/confidentialite")
    assert [b["payload"] for b in message["buttons"]] == [
        "/perte_vol",
        "/code_puk",
        "/resiliation",
        "/horaires",
        "/contact_general",
        "/demander_humain",
    ]


def test_welcome_without_retention_setting_gives_no_number_and_no_link(monkeypatch):
    monkeypatch.setattr(actions_module, "RETENTION_DAYS", None)
    monkeypatch.setattr(actions_module, "PRIVACY_URL", None)
    text = run(ActionAccueil(), make_tracker("demarrer"))[0]["text"]
    assert "Confidentialité : vos messages sont conservés par l'OPT" in text
    assert "jours" not in text and "En savoir plus" not in text


RANKING = [
    {"name": "nlu_fallback", "confidence": 0.5},
    {"name": "preciser_canal", "confidence": 0.3},
    {"name": "code_puk", "confidence": 0.25},
    {"name": "perte_vol", "confidence": 0.2},
    {"name": "resiliation", "confidence": 0.1},
]


def fallback_event():
    return {"event": "user", "text": "?", "parse_data": {"intent": {"name": "nlu_fallback"}}}


def test_first_fallback_offers_the_two_likeliest_topics():
    tracker = make_tracker("nlu_fallback", ranking=RANKING)
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), tracker)
    assert [b["payload"] for b in message["buttons"]] == ["/code_puk", "/perte_vol", "/demander_humain"]
    assert "reformuler" in message["text"]


def test_second_fallback_in_a_row_hands_over():
    events = [fallback_event(), {"event": "bot", "text": "?"}, fallback_event()]
    tracker = make_tracker("nlu_fallback", ranking=RANKING, events=events)
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), tracker)
    assert "conseiller" in message["text"] and "1000@opt.nc" in message["text"]
    assert "ouvert en ce moment" in message["text"]


def test_fallback_after_an_understood_message_is_a_first_fallback():
    understood = {"event": "user", "text": "puk", "parse_data": {"intent": {"name": "code_puk"}}}
    tracker = make_tracker(
        "nlu_fallback", ranking=RANKING, events=[fallback_event(), understood, fallback_event()]
    )
    message, _ = run(clocked(ActionRepondre, at(2026, 11, 30, 10, 0)), tracker)
    assert message["buttons"][0]["payload"] == "/code_puk"


# --- live handoff (actions/handoff.py) ------------------------------------------------------

OPEN = at(2026, 11, 30, 10, 0)  # a Monday, 10h: the 1000 is open
CLOSED = at(2026, 11, 28, 10, 0)  # a Saturday


@pytest.fixture
def desk(monkeypatch):
    """Whether someone is present on the console's desk, as the action would ask it."""
    present = {"value": True}

    async def available():
        return present["value"]

    monkeypatch.setattr(handoff, "desk_available", available)
    return present


def slots(events):
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def test_widget_customer_asking_for_a_person_joins_the_desk_queue(desk):
    tracker = make_tracker("demander_humain", channel="socketio")
    dispatcher, events = run_action(clocked(ActionTransfertHumain, OPEN), tracker)
    (message,) = dispatcher.messages
    assert "je transmets la conversation à un conseiller" in message["text"]
    # the same alternatives as today, with the 1000's state
    assert "1000" in message["text"] and "ouvert en ce moment" in message["text"]
    assert "1000@opt.nc" in message["text"] and "9 rue du Général Gallieni" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/retour_assistant"]
    assert slots(events) == {"handoff": "waiting"}


@pytest.mark.parametrize(
    ("channel", "when", "present"),
    [
        ("socketio", OPEN, False),  # nobody on the desk (out of hours: tests/test_callback.py)
        ("rest", OPEN, True),  # REST never hands over
        (None, OPEN, True),
    ],
)
def test_no_live_handoff_gives_todays_contacts(desk, channel, when, present):
    desk["value"] = present
    tracker = make_tracker("demander_humain", channel=channel)
    dispatcher, events = run_action(clocked(ActionTransfertHumain, when), tracker)
    (message,) = dispatcher.messages
    assert message["text"].startswith("Pour parler à un conseiller :")
    assert "1000@opt.nc" in message["text"]
    assert slots(events) == {}


def test_messenger_customer_is_passed_to_the_page_inbox_in_opening_hours(desk):
    tracker = make_tracker("demander_humain", channel="facebook")
    dispatcher, events = run_action(clocked(ActionTransfertHumain, OPEN), tracker)
    text, custom = dispatcher.messages
    assert "dans Messenger" in text["text"] and "1000@opt.nc" in text["text"]
    assert custom["custom"] == handoff.PASS_TO_INBOX
    assert slots(events) == {"handoff": "inbox"}
    closed = run_action(
        clocked(ActionTransfertHumain, CLOSED), make_tracker("demander_humain", channel="facebook")
    )
    assert [bool(m.get("custom")) for m in closed[0].messages] == [False]


def test_second_failure_on_the_widget_goes_to_the_desk(desk):
    events = [fallback_event(), {"event": "bot", "text": "?"}, fallback_event()]
    tracker = make_tracker("nlu_fallback", ranking=RANKING, events=events, channel="socketio")
    tracker.events[-1]["parse_data"]["intent"]["name"] = "nlu_fallback"
    dispatcher, events = run_action(clocked(ActionRepondre, OPEN), tracker)
    (message,) = dispatcher.messages
    assert message["text"].startswith("Je n'arrive pas à comprendre votre demande : je transmets")
    assert slots(events) == {"handoff": "waiting"}


def held(tracker):
    return [m.get("custom") for m in tracker]


@pytest.mark.parametrize("action_class", [ActionRepondre, ActionTransfertHumain, ActionAccueil])
@pytest.mark.parametrize("state", ["waiting", "human"])
def test_while_a_person_answers_the_assistant_stays_silent(action_class, state):
    now = time.time()
    earlier = [{"event": "slot", "name": "handoff", "value": state, "timestamp": now - 60}]
    tracker = make_tracker("code_puk", slots={"handoff": state}, events=earlier, channel="socketio")
    dispatcher, events = run_action(clocked(action_class, OPEN), tracker)
    assert dispatcher.messages == [{**dispatcher.messages[0], "custom": handoff.HELD}]
    assert not dispatcher.messages[0].get("text") and events == []


def test_a_stale_handoff_ends_and_the_assistant_answers():
    long_ago = time.time() - handoff.MAX_WAIT_SECONDS - 60
    earlier = [{"event": "slot", "name": "handoff", "value": "waiting", "timestamp": long_ago}]
    tracker = make_tracker("code_puk", slots={"handoff": "waiting"}, events=earlier, channel="socketio")
    dispatcher, events = run_action(clocked(ActionRepondre, OPEN), tracker)
    assert "Code PUK" in dispatcher.messages[0]["text"]
    assert slots(events)["handoff"] is None


def test_messenger_inbox_standby_messages_are_not_answered_but_a_thread_back_is():
    earlier = [{"event": "slot", "name": "handoff", "value": "inbox", "timestamp": time.time()}]
    standby = make_tracker(
        "code_puk", slots={"handoff": "inbox"}, events=earlier, channel="facebook", metadata={"standby": True}
    )
    dispatcher, _ = run_action(clocked(ActionRepondre, OPEN), standby)
    assert dispatcher.messages[0]["custom"] == handoff.HELD
    back = make_tracker("code_puk", slots={"handoff": "inbox"}, events=earlier, channel="facebook")
    dispatcher, events = run_action(clocked(ActionRepondre, OPEN), back)
    assert "Code PUK" in dispatcher.messages[0]["text"] and slots(events)["handoff"] is None


def test_a_standby_message_is_never_answered_even_without_the_slot():
    """The page inbox took the thread without the assistant handing over (Meta's tools)."""
    tracker = make_tracker("code_puk", channel="facebook", metadata={"standby": True})
    dispatcher, events = run_action(clocked(ActionRepondre, OPEN), tracker)
    assert [m.get("custom") for m in dispatcher.messages] == [handoff.HELD] and events == []


def test_back_to_the_assistant():
    tracker = make_tracker("retour_assistant", slots={"handoff": "waiting"}, channel="socketio")
    dispatcher, events = run_action(ActionRetourAssistant(), tracker)
    assert "de nouveau l'assistant automatique" in dispatcher.messages[0]["text"]
    assert slots(events) == {"handoff": None}


def test_the_test_clock_file_moves_now_and_needs_an_offset(monkeypatch, tmp_path):
    from actions import hours

    clock = tmp_path / "clock"
    monkeypatch.setenv(hours.ENV_TEST_CLOCK, str(clock))
    assert abs((hours.now_noumea() - datetime.now(UTC)).total_seconds()) < 5  # no file: real time
    clock.write_text("2026-11-30T10:00:00+11:00")
    assert hours.now_noumea() == datetime(2026, 11, 30, 10, 0, tzinfo=NOUMEA)
    clock.write_text("2026-11-28T09:00:00+11:00")  # moved while running
    assert hours.now_noumea() == datetime(2026, 11, 28, 9, 0, tzinfo=NOUMEA)
    clock.write_text("2026-11-30T10:00:00")
    with pytest.raises(ValueError, match="offset"):
        hours.now_noumea()


@pytest.mark.parametrize(
    "text", ["explique-moi le code civil sur les successions", "des conseils pour organiser un repas"]
)
def test_a_person_asked_for_names_one_else_the_assistant_asks(desk, text):
    """DIET may take "conseils" or "explique-moi" for a request for a person."""
    tracker = make_tracker("demander_humain", text=text, channel="socketio")
    dispatcher, events = run_action(clocked(ActionTransfertHumain, OPEN), tracker)
    (message,) = dispatcher.messages
    assert message["text"].startswith("Je ne suis pas sûr d'avoir compris.")
    assert "1000" not in message["text"] and events == []
    assert [b["payload"] for b in message["buttons"]][-1] == "/demander_humain"  # still one tap away


def test_every_request_for_a_person_we_know_names_one():
    """The training data and the held-out set: the guard above never refuses a real request."""
    from rasa.shared.nlu.training_data.loading import load_data

    from actions.understanding import asks_for_person
    from harness.nlu_holdout import load_holdout
    from harness.project import ROOT

    training = [
        m.get("text")
        for m in load_data(str(ROOT / "data" / "nlu")).intent_examples
        if m.get("intent") == "demander_humain"
    ]
    held_out = [e.text for e in load_holdout() if e.intent == "demander_humain"]
    assert len(training) >= 20 and len(held_out) >= 10
    assert [t for t in training + held_out if not asks_for_person(t)] == []
