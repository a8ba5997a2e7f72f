"""The failure classes of issue 10, end to end: real Rasa with the trained model, real action
server, real HTTP (REST channel). Sentences of our own, not of the blind set (tests/blind/).
Expectations are facts of the fiche."""

from __future__ import annotations

import re
import uuid

import pytest

from harness.blind_set import contains, fiche_facts
from harness.servers import texts

pytestmark = [pytest.mark.servers, pytest.mark.model]

SHORT_NUMBER = re.compile(r"(?<![\d+])10(00|16|12)(?![\d@])")


def conversation(servers, *messages):
    sender = f"e2e-u-{uuid.uuid4().hex[:8]}"
    return [texts(servers.say(sender, m)) for m in messages]


def test_follow_up_on_the_agency_by_email(servers):
    first, follow = conversation(servers, "c'est où l'agence entreprise ?", "et si je veux leur écrire ?")
    assert "Gallieni" in first
    assert "agence-entreprises@opt.nc" in follow


def test_follow_up_in_writing_on_a_support_question_says_no(servers):
    first, follow = conversation(
        servers,
        "mon portable pro n'a plus de réseau depuis hier",
        "je peux vous envoyer un mail pour ce problème ?",
    )
    assert "SAV et support technique" in first
    assert follow.splitlines()[0].startswith("Non, pas par courrier") and "1000" in follow


def test_follow_up_on_a_day(servers):
    first, follow = conversation(servers, "quels sont vos horaires ?", "et le samedi ?")
    assert "7h30" in first
    assert "samedi" in follow and "fermé" in follow and "1012" in follow


@pytest.mark.parametrize(
    "message, facts",
    [
        (
            "il me faut le code PUK, et aussi votre adresse mail",
            ["pièce d'identité", "1000@opt.nc", "agence-entreprises@opt.nc"],
        ),
        ("je veux résilier ma ligne. Au fait, vous fermez à quelle heure ?", ["Résiliation", "15h45"]),
        (
            "le numéro pour appeler depuis l'étranger puis l'adresse du forum",
            ["+687 26 87 70", "optetvous.nc"],
        ),
    ],
)
def test_two_questions_in_one_message(servers, message, facts):
    (answer,) = conversation(servers, message)
    for fact in facts:
        assert fact in answer, answer


@pytest.mark.parametrize(
    "message, procedure",
    [
        (
            "on m'a volé mon iphone pro à Tokyo, comment suspendre la ligne depuis le Japon ?",
            "Déclaration de perte ou de vol",
        ),
        ("je m'installe en Australie, je voudrais clôturer mon abonnement mobile", "Résiliation"),
    ],
)
def test_abroad_keeps_the_procedure_and_gives_the_number_from_abroad(servers, message, procedure):
    (answer,) = conversation(servers, message)
    assert procedure in answer and "+687 26 87 70" in answer
    assert not SHORT_NUMBER.search(answer), answer


def test_abroad_said_earlier_changes_the_numbers(servers):
    _, answer = conversation(
        servers, "bonjour, je suis en déplacement en Nouvelle-Zélande", "votre numéro de téléphone ?"
    )
    assert "+687 26 87 70" in answer and not SHORT_NUMBER.search(answer)


@pytest.mark.parametrize(
    "message, expected",
    [
        ("vous êtes ouverts le dimanche ?", ["fermé", "1012"]),
        ("mardi à 17h je peux encore vous appeler ?", ["fermé", "1012"]),
        ("ouvert le 14 juillet ?", ["férié", "1012"]),
    ],
)
def test_days_and_times_other_than_now(servers, message, expected):
    (answer,) = conversation(servers, message)
    assert "en ce moment" not in answer
    for fact in expected:
        assert contains(answer, fact), answer


@pytest.mark.parametrize(
    "message, expected",
    [
        ("le 1016 ça correspond à quoi ?", "Agence Entreprise"),
        ("le 1012 c'est pour quoi faire ?", "renseignements"),
    ],
)
def test_services_explained(servers, message, expected):
    (answer,) = conversation(servers, message)
    assert expected in answer and "Je suis Chat Cagou" not in answer


@pytest.mark.parametrize(
    "message",
    [
        "j'ai égaré ma carte d'identité, que faire ?",
        "on m'a piqué mon vélo devant la mairie",
        "je veux résilier mon abonnement à la salle de muscu",
        "c'est quoi le code du portail de la résidence ?",
        "à quelle heure ouvre la pharmacie de garde ?",
        "coupure d'eau dans tout le quartier depuis ce matin",
        "le numéro des pompiers c'est lequel ?",
    ],
)
def test_off_topic_messages_get_no_fiche_fact(servers, message):
    (answer,) = conversation(servers, message)
    found = [f for f in fiche_facts() if contains(answer, f)]
    assert not found, answer


def test_a_mobilis_question_the_fiche_does_not_answer(servers):
    (answer,) = conversation(servers, "combien coûte un forfait avec 50 Go ?")
    assert "ne donne ni les prix" in answer
    assert "mes-documents-telecharger-mobile" in answer


def test_english_gets_a_bilingual_reply_with_the_fact(servers):
    (answer,) = conversation(servers, "what number do I call from overseas?")
    assert "I answer in French" in answer and "+687 26 87 70" in answer


@pytest.mark.parametrize(
    "message", ["<p>je voudrais mon <b>code PUK</b></p>", "code PUK ? https://www.opt.nc/aide"]
)
def test_markup_and_links_do_not_hide_the_question(servers, message):
    (answer,) = conversation(servers, message)
    assert "Code PUK" in answer


def test_a_long_message_is_answered_on_its_question(servers):
    story = (
        "Bonjour, je suis gérant d'une petite entreprise de transport à Païta, nous avons huit chauffeurs "
        "qui ont chacun un téléphone professionnel avec une ligne Mobilis. L'un d'eux quitte la société "
        "à la fin du mois et nous ne souhaitons pas garder sa ligne, car nous réorganisons les tournées "
        "et nous n'avons pas prévu de le remplacer avant l'année prochaine. Nous avons déjà récupéré le "
        "téléphone et la carte SIM. Comment faire pour mettre fin à son abonnement ?"
    )
    assert len(story.split()) > 70
    (answer,) = conversation(servers, story)
    assert "Résiliation" in answer and "1000@opt.nc" in answer
