"""The understanding layer without Rasa: text cleaning, clauses, abroad, language, dates, and
the decisions of action_repondre (compound, follow-ups on any topic, abroad, days, scope,
other languages), with CollectingDispatcher and Tracker fixtures."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from actions.actions import ActionRepondre
from actions.hours import NOUMEA, asked_moment
from components.clauses import split_clauses
from components.cleaner import clean_for_nlu
from components.situation import abroad_places, detect_language, fold
from tests.conftest import make_tracker, run_action

MONDAY_10H = datetime(2026, 11, 30, 10, 0, tzinfo=NOUMEA)
# A short number offered as a number to call (not inside an email address).
SHORT_NUMBER = re.compile(r"(?<![\d+])10(00|16|12)(?![\d@])")


def reply(
    intent,
    text="",
    entities=None,
    slots=None,
    clauses=None,
    unknown=None,
    language="fr",
    when=MONDAY_10H,
    ranking=None,
    confidence=0.9,
    second_opinion=None,
):
    """The one message action_repondre sends for this parse (components' outputs included)."""
    tracker = make_tracker(intent, entities, slots, text=text, ranking=ranking)
    tracker.latest_message["intent"]["confidence"] = confidence
    tracker.latest_message.update(clauses=clauses or [], unknown_nouns=unknown or [], language=language)
    if second_opinion is not None:
        tracker.latest_message["second_opinion"] = second_opinion
    action = ActionRepondre()
    action.clock = lambda: when
    dispatcher, events = run_action(action, tracker)
    assert len(dispatcher.messages) == 1
    return dispatcher.messages[0], {e["name"]: e["value"] for e in events}


def entity(name, value, start=0, end=1000):
    return {"entity": name, "value": value, "start": start, "end": end}


# --- NLU components' pure parts ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("<b>code PUK</b> svp", "code PUK svp"),
        ("<script>alert(1)</script>je veux résilier", "je veux résilier"),
        ("vu sur https://www.opt.nc/x?y=1 le formulaire", "vu sur le formulaire"),
        ("<i>horaires</i> &amp; adresse", "horaires & adresse"),
        ('<a href="http://x.example">clique ici</a> code PUK', "code PUK"),
        ("prix 3 < 5 et 7 > 2", "prix 3 < 5 et 7 > 2"),
    ],
)
def test_markup_and_links_are_removed_for_the_nlu(raw, cleaned):
    assert clean_for_nlu(raw) == cleaned


@pytest.mark.parametrize(
    "text, clauses",
    [
        ("mon PUK et aussi à quelle heure ferme le 1016 ?", ["mon PUK", "à quelle heure ferme le 1016"]),
        ("l'email du 1000 puis le lien du forum svp", ["l'email du 1000", "le lien du forum svp"]),
        ("perte et vol de mon téléphone", ["perte et vol de mon téléphone"]),
        ("écrivez à 1000@opt.nc. Merci", ["écrivez à 1000@opt.nc", "Merci"]),
    ],
)
def test_clauses(text, clauses):
    assert [text[s:e] for s, e in split_clauses(text)] == clauses


@pytest.mark.parametrize(
    "text, abroad",
    [
        ("je suis en australie", True),
        ("je déménage en France", True),
        ("en mission en Nouvelle-Zélande", True),
        ("depuis l'étranger comment je vous appelle", True),
        ("je suis en métropole", True),
        ("je suis à Nouméa", False),
        ("je suis à Koné pour le boulot", False),
        ("code PUK ?", False),
    ],
)
def test_abroad_without_spacy(text, abroad):
    assert bool(abroad_places(text)) is abroad


@pytest.mark.parametrize(
    "text, language",
    [
        ("phone number to call you from Japan?", "en"),
        ("I lost my phone, what should I do", "en"),
        ("code PUK ?", "fr"),
        ("jai perdu mon tel", "fr"),
        ("merci", "fr"),
        ("je veux résilier ma ligne professionnelle", "fr"),
    ],
)
def test_language(text, language):
    assert detect_language(text) == language


THURSDAY = datetime(2026, 12, 3, 10, 0, tzinfo=NOUMEA)


@pytest.mark.parametrize(
    "text, expected, whole_day",
    [
        ("c'est ouvert dimanche ?", datetime(2026, 12, 6, 10, 0), True),
        ("lundi à 16h c'est encore ouvert ?", datetime(2026, 12, 7, 16, 0), False),
        ("demain à 7h45", datetime(2026, 12, 4, 7, 45), False),
        ("le 24 septembre", datetime(2027, 9, 24, 10, 0), True),
        ("ce midi vous êtes ouverts", datetime(2026, 12, 3, 12, 0), False),
        ("jeudi à 15h40", datetime(2026, 12, 3, 15, 40), False),
        ("il est 15h50 le 1000 est encore ouvert ?", datetime(2026, 12, 3, 15, 50), False),
    ],
)
def test_asked_moment(text, expected, whole_day):
    moment = asked_moment(text, THURSDAY)
    assert moment.instant == expected.replace(tzinfo=NOUMEA)
    assert moment.whole_day is whole_day


@pytest.mark.parametrize(
    "text", ["vous êtes ouverts ?", "mon PUK et aussi à quelle heure ferme le 1016 ?", "code puk"]
)
def test_no_moment(text):
    assert asked_moment(text, THURSDAY) is None


# --- action_repondre ----------------------------------------------------------------------


def test_compound_message_answers_each_question_in_order():
    text = "mon PUK et aussi à quelle heure ferme le 1016 ?"
    clauses = [
        {"text": "mon PUK", "start": 0, "end": 7, "intent": "code_puk", "confidence": 0.8},
        {
            "text": "à quelle heure ferme le 1016",
            "start": 16,
            "end": 44,
            "intent": "horaires",
            "confidence": 0.7,
        },
    ]
    message, slots = reply("horaires", text, [entity("service", "1016", 40, 44)], clauses=clauses)
    answer = message["text"]
    assert answer.index("Code PUK") < answer.index("1016 : du lundi au vendredi de 7h45 à 15h30")
    assert "NON — le code PUK n'est pas communiqué par téléphone" in answer
    assert answer.count("Source :") == 1 and not message["buttons"]
    assert slots["procedure"] == "code_puk" and slots["sujet"] == "horaires"


def test_unsure_clauses_leave_the_message_to_diet():
    clauses = [
        {"text": "bonjour", "start": 0, "end": 7, "intent": "greet", "confidence": 0.9},
        {"text": "je veux résilier", "start": 9, "end": 25, "intent": "resiliation", "confidence": 0.3},
    ]
    message, _ = reply("resiliation", "bonjour, je veux résilier", clauses=clauses)
    assert message["text"].startswith("Résiliation :")


@pytest.mark.parametrize("procedure", ["perte_vol", "blocage_ligne", "support_technique", "souscription"])
def test_abroad_gives_the_number_from_abroad_and_still_the_procedure(procedure, fiche):
    message, _ = reply(procedure, "je suis à Sydney", [entity("etranger", "Sydney")])
    text = message["text"]
    assert fiche.procedures[procedure].label in text
    assert fiche.abroad_number in text
    assert not SHORT_NUMBER.search(text), text


def test_abroad_said_earlier_holds_for_the_conversation(fiche):
    message, _ = reply("contact_telephone", "votre numéro ?", slots={"etranger": "Japon"})
    assert fiche.abroad_number in message["text"] and not SHORT_NUMBER.search(message["text"])
    message, _ = reply("horaires", "vous êtes ouverts ?", slots={"etranger": "Japon"})
    assert "heure de Nouméa" in message["text"] and not SHORT_NUMBER.search(message["text"])


def test_sunday_is_answered_for_sunday_with_the_1012():
    text = reply("horaires", "c'est ouvert dimanche ?")[0]["text"]
    assert text.startswith(
        "Le dimanche 06/12/2026, fermé : Service Clientèle (1000) et Agence Entreprise (1016)"
    )
    assert "fermé ce jour-là ; réouverture lundi 07/12 à 7h30" in text
    assert "1012" in text and "en ce moment" not in text


def test_a_weekday_hour_after_closing():
    text = reply("horaires", "lundi à 16h c'est encore ouvert ?")[0]["text"]
    assert text.startswith("Le lundi 30/11/2026 à 16h, fermé")  # asked on a Monday: that day
    assert "fermé à cette heure-là" in text and "1012" in text


def test_a_public_holiday_asked_by_date():
    text = reply("horaires", "vous êtes ouverts le 24 septembre ?")[0]["text"]
    assert "jour férié : Fête de la Citoyenneté" in text and "1012" in text


def test_nights_and_24h_bring_the_1012_even_when_open():
    text = reply("horaires", "vous répondez 24h/24 ?")[0]["text"]
    assert "1012" in text


@pytest.mark.parametrize(
    "last, channel, expected",
    [
        ("contact_adresse", "courrier", "agence-entreprises@opt.nc"),
        ("contact_adresse", "telephone", "1016"),
        ("horaires", "courrier", "1000@opt.nc"),
        ("contact_email", "agence", "agence-entreprises@opt.nc"),
        ("suivi_conso", "courrier", "1088"),
        ("delai_retablissement", "telephone", "4 jours"),
    ],
)
def test_follow_up_channel_on_any_topic(last, channel, expected):
    message, _ = reply("preciser_canal", "et par là ?", [entity("canal", channel)], slots={"sujet": last})
    assert expected in message["text"]


def test_follow_up_in_writing_on_support_says_no():
    message, _ = reply(
        "preciser_canal",
        "je préfère vous écrire",
        [entity("canal", "courrier")],
        slots={"sujet": "support_technique", "procedure": "support_technique"},
    )
    assert message["text"].splitlines()[0].startswith("Non, pas par courrier, mail ou internet :")
    assert "NON, pas par ce canal" in message["text"]


def test_the_other_number():
    message, _ = reply("horaires", "et pour l'autre numéro ?", slots={"sujet": "horaires", "service": "1000"})
    assert "1016" in message["text"] and "au 1000" not in message["text"]


@pytest.mark.parametrize(
    "service, expected",
    [
        ("1016", "Agence Entreprise"),
        ("1012", "renseignements"),
        ("1088", "consommation"),
        ("etranger", "extérieur"),
    ],
)
def test_services_explained(service, expected):
    assert expected in reply("info_service", "c'est qui ?", [entity("service", service)])[0]["text"]


def test_what_the_fiche_does_not_say(fiche):
    text = reply("guide_tarifaire", "combien coûte le forfait 5G ?")[0]["text"]
    assert "ne donne ni les prix" in text and fiche.tariff_guide in text and "1000" in text
    assert "XPF" not in text and "F CFP" not in text


@pytest.mark.parametrize(
    "intent, text, unknown",
    [
        ("perte_vol", "j'ai perdu mon passeport", ["passeport"]),
        ("resiliation", "résilier la crèche de mon fils", ["crèche"]),
        ("code_puk", "le code de mon alarme", ["alarme"]),
        ("horaires", "les horaires du musée", ["musée"]),
    ],
)
def test_a_procedure_word_about_something_else_asks_before_answering(intent, text, unknown):
    message, slots = reply(intent, text, unknown=unknown)
    assert "ligne mobile Mobilis Pro" in message["text"]
    assert not re.search(r"\d{4}|@", message["text"])
    assert slots["en_attente"][0]["intent"] == intent


def test_scope_question_answered_yes_then_no():
    pending = {"en_attente": [{"intent": "perte_vol", "channel": None, "services": []}]}
    message, slots = reply("affirm", "oui", slots=pending)
    assert message["text"].startswith("Déclaration de perte ou de vol") and slots["en_attente"] is None
    message, slots = reply("deny", "non", slots=pending)
    assert "Je ne peux vous aider que pour" in message["text"] and slots["en_attente"] is None


def test_a_line_word_keeps_the_answer():
    message, _ = reply("perte_vol", "j'ai perdu mon sac avec mon téléphone pro dedans", unknown=["sac"])
    assert message["text"].startswith("Déclaration de perte ou de vol")


def test_english_question_gets_a_bilingual_reply_with_the_fact():
    text = reply("code_puk", "PUK code please", language="en")[0]["text"]
    assert "I answer in French" in text and "Code PUK" in text and "+687 26 87 70" in text


def test_english_off_topic_gets_no_fact():
    text = reply("out_of_scope", "what's the weather like", language="en")[0]["text"]
    assert "I answer in French" in text and not re.search(r"\d{4}|@", text)


def test_long_message_nlu_failure_rescued_by_its_question_clause():
    clauses = [
        {
            "text": "nous sommes une PME de 12 salariés",
            "start": 0,
            "end": 33,
            "intent": "out_of_scope",
            "confidence": 0.5,
        },
        {
            "text": "comment obtenir le code PUK",
            "start": 35,
            "end": 62,
            "intent": "code_puk",
            "confidence": 0.9,
        },
    ]
    message, _ = reply("nlu_fallback", "...", clauses=clauses)
    assert message["text"].startswith("Code PUK")


def test_small_talk_and_its_follow_ups():
    assert reply("thanks", "merci")[0]["text"].startswith("Avec plaisir")
    message, _ = reply("goodbye", "bon et lundi à 9h ?", slots={"sujet": "horaires"})
    assert "ouvert à cette heure-là" in message["text"]
    clauses = [
        {"text": "merci", "start": 0, "end": 5, "intent": "thanks", "confidence": 0.9},
        {"text": "et le code PUK", "start": 7, "end": 21, "intent": "code_puk", "confidence": 0.8},
    ]
    assert reply("thanks", "merci, et le code PUK ?", clauses=clauses)[0]["text"].startswith("Code PUK")


def test_saying_only_where_one_is_repeats_the_last_answer_for_abroad(fiche):
    message, _ = reply(
        "out_of_scope",
        "je suis à Sydney en ce moment",
        [entity("etranger", "Sydney")],
        slots={"sujet": "perte_vol", "procedure": "perte_vol"},
    )
    assert (
        message["text"].startswith("Déclaration de perte ou de vol")
        and fiche.abroad_number in message["text"]
    )
    assert not SHORT_NUMBER.search(message["text"])


def test_a_short_follow_up_the_nlu_cannot_place_continues_the_last_topic():
    message, _ = reply("nlu_fallback", "et avec l'appli ?", slots={"sujet": "suivi_conso"})
    assert "application smartphone Mobilis : non" in message["text"]


def test_hesitant_diet_and_agreeing_second_classifier():
    message, _ = reply(
        "nlu_fallback",
        "le SAV se joint par téléphone ?",
        ranking=[
            {"name": "nlu_fallback", "confidence": 0.4},
            {"name": "support_technique", "confidence": 0.35},
        ],
        second_opinion={"name": "support_technique", "confidence": 0.5},
    )
    assert message["text"].startswith("SAV et support technique")


def test_off_topic_for_the_second_classifier_and_no_line_word_asks_first():
    message, _ = reply(
        "horaires",
        "quelle heure est-il à Paris ?",
        confidence=0.6,
        second_opinion={"name": "out_of_scope", "confidence": 0.7},
    )
    assert "ligne mobile Mobilis Pro" in message["text"]


def test_two_channels_with_a_negation_ask_for_the_last():
    entities = [entity("canal", "agence", 20, 30), entity("canal", "courrier", 32, 40)]
    message, _ = reply(
        "preciser_canal", "si je peux pas me déplacer, par internet ?", entities, slots={"sujet": "code_puk"}
    )
    assert message["text"].startswith("Oui, par courrier, mail ou internet")
    assert "Démarche : Code PUK." in message["text"]


def test_a_negation_without_any_channel():
    message, _ = reply("perte_vol", "mon portable pro ne s'allume plus et je ne le trouve pas")
    assert message["text"].startswith("Déclaration de perte ou de vol :")


def test_a_price_asked_about_a_procedure_says_the_fiche_does_not_give_it(fiche):
    text = reply("resiliation", "quels sont les frais si on résilie avant la fin ?")[0]["text"]
    assert text.startswith("Résiliation :") and "ne donne ni les prix" in text
    assert fiche.tariff_guide in text and text.count("Source :") == 1
    assert "ne donne ni" not in reply("delai_retablissement", "combien de temps pour réparer ?")[0]["text"]


def test_calling_from_abroad_asked_beside_another_question_is_not_being_abroad():
    text = "numéro depuis l'étranger et numéro de nuit ?"
    clauses = [
        {
            "text": "numéro depuis l'étranger",
            "start": 0,
            "end": 24,
            "intent": "contact_etranger",
            "confidence": 0.99,
        },
        {"text": "numéro de nuit", "start": 28, "end": 42, "intent": "contact_telephone", "confidence": 0.87},
    ]
    answer = reply("contact_etranger", text, [entity("etranger", "l'étranger")], clauses=clauses)[0]["text"]
    assert "+687 26 87 70" in answer and "1012" in answer


def test_a_clause_naming_a_day_and_a_call_is_an_hours_question():
    text = "quel est le délai de rétablissement et qui appeler en cas de panne le week-end ?"
    clauses = [
        {
            "text": "quel est le délai de rétablissement",
            "start": 0,
            "end": 35,
            "intent": "delai_retablissement",
            "confidence": 0.95,
        },
        {
            "text": "qui appeler en cas de panne le week-end",
            "start": 39,
            "end": 78,
            "intent": "out_of_scope",
            "confidence": 0.4,
        },
    ]
    answer = reply("delai_retablissement", text, clauses=clauses)[0]["text"]
    assert "4 jours" in answer and "1012" in answer


def test_emojis_alone_are_not_small_talk():
    message, _ = reply("goodbye", "😀😀😀")
    assert "reformuler" in message["text"]


def test_the_clause_classifier_predicts_as_its_scikit_learn_pipeline():
    """ClauseClassifier.classify runs the pipeline's steps by hand (no joblib, column-major
    weights): the same intents and probabilities as the pipeline's own predict_proba."""
    import copy

    from components.clauses import ClauseClassifier, pipeline

    training = [
        ("j'ai perdu mon téléphone", "perte_vol"),
        ("on m'a volé mon portable", "perte_vol"),
        ("code puk svp", "code_puk"),
        ("mon code PUK est bloqué", "code_puk"),
        ("vous êtes ouverts quand ?", "horaires"),
        ("horaires du service client", "horaires"),
    ]
    model = pipeline(10.0).fit([t for t, _ in training], [i for _, i in training])
    expected_model = copy.deepcopy(model)
    classifier = ClauseClassifier({}, None, None, model=model, vocabulary={"code"})
    texts = ["téléphone perdu", "PUK ?", "ouvert samedi", "code puk et horaires", "rien à voir"]
    ours = classifier.classify(texts)
    probabilities = expected_model.predict_proba([fold(t) for t in texts])
    expected = [(str(expected_model.classes_[p.argmax()]), float(p.max())) for p in probabilities]
    assert [i for i, _ in ours] == [i for i, _ in expected]
    assert [i for i, _ in ours[:3]] == ["perte_vol", "code_puk", "horaires"]
    assert [c for _, c in ours] == pytest.approx([c for _, c in expected], abs=1e-12)


def test_a_follow_up_at_that_time_reads_the_moment_asked_before():
    """« à cette heure-là » points back to the hour the customer asked about in an earlier
    message, not to now (a Wednesday at 17h: the 1000 is closed now, open on Tuesday at 15h40)."""
    earlier = [
        {"event": "user", "text": "horaires du 1016 ?"},
        {"event": "bot", "text": "…"},
        {"event": "user", "text": "et un mardi à 15h40, ça répond encore ?"},
        {"event": "bot", "text": "…"},
    ]
    wednesday_17h = datetime(2026, 12, 2, 17, 0, tzinfo=NOUMEA)
    for text, state in [
        ("et le 1000 à cette heure-là ?", "ouvert à cette heure-là"),
        ("et le 1000 ?", "fermé en ce moment"),  # no pointer back: now
    ]:
        current = {"event": "user", "text": text}
        tracker = make_tracker("horaires", text=text, events=[*earlier, current])
        tracker.latest_message.update(clauses=[], unknown_nouns=[], language="fr")
        action = ActionRepondre()
        action.clock = lambda: wednesday_17h
        dispatcher, _ = run_action(action, tracker)
        assert state in dispatcher.messages[0]["text"], (text, dispatcher.messages[0]["text"])


def test_a_reopening_tomorrow_names_the_day():
    """« lundi à 16h ? » asked on a Monday morning: the 1000 is closed then and reopens on
    Tuesday, named (« demain » alone left the customer to work out which day)."""
    message, _ = reply("horaires", text="je peux appeler le 1000 lundi à 16h ?", when=MONDAY_10H)
    assert "demain mardi à 7h30" in message["text"], message["text"]
