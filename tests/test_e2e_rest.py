"""End to end over REST: the real action server and Rasa, the trained model, real HTTP."""

from __future__ import annotations

import uuid

import pytest

from harness.servers import texts

pytestmark = [pytest.mark.servers, pytest.mark.model]


def new_sender():
    return f"e2e-{uuid.uuid4().hex[:8]}"


# (question, facts the answer must carry, words it must not carry)
SAMPLES = [
    (
        "j'ai perdu mon téléphone, je fais comment ?",
        ["Déclaration de perte ou de vol", "1000", "carte SIM", "1000@opt.nc"],
        [],
    ),
    (
        "code PUK ?",
        ["Code PUK", "pièce d'identité", "formulaire de contact", "https://www.opt.nc", "NON"],
        [],
    ),
    (
        "je veux résilier ma ligne pro par téléphone",
        ["Résiliation", "NON", "1000@opt.nc", "formulaire à remplir sur place"],
        [],
    ),
    ("quel est votre adresse mail ?", ["1000@opt.nc", "agence-entreprises@opt.nc"], []),
    ("comment vous appeler depuis la France ?", ["+687 26 87 70"], []),
    ("vous êtes ouverts quand ?", ["7h30 à 15h45", "7h45 à 15h30", "Nouméa"], []),
    ("où sont les tarifs ?", ["https://www.opt.nc/particuliers/mobile/mes-documents-telecharger-mobile"], []),
    ("je veux parler à un conseiller", ["1000", "1000@opt.nc", "9 rue du Général Gallieni"], []),
]


@pytest.mark.parametrize("question, present, absent", SAMPLES)
def test_answers_carry_the_right_facts(servers, question, present, absent):
    answer = texts(servers.say(new_sender(), question))
    for fact in present:
        assert fact in answer, f"{question!r} -> {answer!r}"
    for word in absent:
        assert word not in answer


def test_follow_up_keeps_the_procedure(servers):
    sender = new_sender()
    first = servers.say(sender, "je voudrais résilier mon abonnement")
    assert "Résiliation" in texts(first)
    assert any(b["payload"].startswith('/resiliation{"canal"') for m in first for b in m.get("buttons", []))
    follow = texts(servers.say(sender, "et par mail ?"))
    assert follow.startswith("Oui, par courrier, mail ou internet :")
    assert "1000@opt.nc" in follow


def test_button_payload_drives_the_conversation(servers):
    sender = new_sender()
    servers.say(sender, "code puk svp")
    # the payload of the "En agence" button (actions/answers.py channel_button)
    reply = texts(servers.say(sender, '/code_puk{"canal":"agence"}'))
    assert reply.startswith("Oui, en agence")


def test_out_of_scope_gets_no_fact(servers):
    reply = texts(servers.say(new_sender(), "quel temps fera-t-il demain à Nouméa ?"))
    assert "Mobilis Pro" in reply
    assert "@" not in reply and "1000" not in reply


def test_conversation_survives_a_restart(servers):
    sender = new_sender()
    servers.say(sender, "je veux faire une réclamation")
    servers.rasa.terminate()
    servers.rasa.wait(timeout=30)
    servers.start_rasa()
    reply = texts(servers.say(sender, "et par téléphone ?"))
    assert reply.startswith("Non, pas par téléphone")


def test_english_gets_a_bilingual_reply_with_the_contacts(servers):
    # Issue 10: another language gets a short bilingual reply and the essential contacts.
    answer = texts(servers.say(new_sender(), "Hello, can you help me with my phone bill?"))
    assert "I answer in French" in answer and "je réponds en français" in answer
    assert "1000@opt.nc" in answer


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "a" * 5000,
        "😀😀😀",
        "12345678",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "'; DROP TABLE events; --",
    ],
    ids=["empty", "blank", "5000-chars", "emojis", "digits", "script", "img", "sql"],
)
def test_bad_input_gets_a_polite_french_reply(servers, message):
    replies = servers.say(new_sender(), message)
    assert replies, "every message gets an answer"
    answer = texts(replies)
    # a clarification, the out-of-scope answer or an input-guard message, in French...
    assert any(word in answer for word in ("reformuler", "Je ne peux vous aider que", "message")), answer
    # ...and never a procedure or a fact picked at random
    assert "Source :" not in answer, answer
