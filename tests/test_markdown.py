"""The Markdown subset of the answers (actions/markdown.py): blocks, links, plain lines."""

from __future__ import annotations

import itertools
import re

import pytest

from actions import answers, markdown
from actions.fiche import CHANNELS, PROCEDURES
from tests.test_understanding import MONDAY_10H

NUMBERS = {"1000": "1000", "1016": "1016", "+687 26 87 70": "+687268770"}


def test_blocks_keep_lists_together_and_separate_paragraphs():
    text = markdown.blocks(["**Oui.**", "- a", "- b", "Après la liste.", "", "Source."])
    assert text == "**Oui.**\n\n- a\n- b\n\nAprès la liste.\n\nSource."
    assert markdown.lines_of(text) == ["**Oui.**", "- a", "- b", "Après la liste.", "Source."]


@pytest.mark.parametrize(
    "text, linked",
    [
        ("appelez le 1000.", "appelez le [1000](tel:1000)."),
        ("écrivez à 1000@opt.nc.", "écrivez à [1000@opt.nc](mailto:1000@opt.nc)."),
        ("sur https://www.opt.nc.", "sur [https://www.opt.nc](https://www.opt.nc)."),
        ("le site www.opt.nc, ou", "le site [www.opt.nc](https://www.opt.nc), ou"),
        ("Forum : optetvous.nc ;", "Forum : [optetvous.nc](https://optetvous.nc) ;"),
        ("le +687 26 87 70 (prix)", "le [+687 26 87 70](tel:+687268770) (prix)"),
        ("**au 1016**", "**au [1016](tel:1016)**"),
        # not numbers of the fiche, or inside something else: unchanged
        ("10000 clients, 21000, 1000e", "10000 clients, 21000, 1000e"),
        ("déjà [1000](tel:1000)", "déjà [1000](tel:1000)"),
    ],
)
def test_with_links(text, linked):
    assert markdown.with_links(text, NUMBERS) == linked


def test_a_link_that_is_not_https_mailto_or_tel_is_never_made():
    linked = markdown.with_links("voir javascript:alert(1) ou ftp://x.org", NUMBERS)
    assert re.findall(r"\]\((\w+):", linked) == []


def test_plain_is_what_messenger_shows():
    text = "**Oui, par email : [1000@opt.nc](mailto:1000@opt.nc).**\n\n- a [1000](tel:1000)\n- b\n\nSource."
    assert markdown.plain(text) == "Oui, par email : 1000@opt.nc.\n• a 1000\n• b\nSource."


def _answers(fiche):
    from actions.answers import Context

    ctx = Context(instant=MONDAY_10H)
    for procedure in PROCEDURES:
        for channel in (None, *CHANNELS):
            yield f"{procedure}/{channel}", answers.procedure_answer(fiche, procedure, channel)
    for topic, answer in answers.TOPIC_ANSWERS.items():
        yield topic, answer(fiche, ctx)


def test_every_answer_starts_with_one_bold_sentence_and_keeps_its_source(fiche):
    for name, reply in _answers(fiche):
        first, *rest = markdown.lines_of(reply.text)
        assert first.startswith("**") and first.endswith("**") and first.count("**") == 2, name
        assert rest and rest[-1] == fiche.source_text, name
        assert "•" not in reply.text, name  # bullets are Markdown lists
        # a list item follows a blank line or another item: Markdown would otherwise run it
        # into the paragraph before it (what rasa-webchat did with our "•" lines)
        lines = reply.text.split("\n")
        for previous, line in itertools.pairwise(lines):
            if line.startswith("- "):
                assert previous == "" or previous.startswith("- "), (name, line)
            elif line:
                assert previous == "", (name, line)  # each paragraph a block of its own
