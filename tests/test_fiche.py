"""The fiche loader: the real file checked against the seed document, and malformed files."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import yaml

from actions.fiche import CHANNELS, DEFAULT_PATH, PROCEDURES, FicheError, load_fiche, parse_fiche
from tests.conftest import ROOT, normalise

# Row labels of the seed's procedure x channel matrix.
SEED_ROWS = {
    "Déclaration Perte ou Vol": "perte_vol",
    "Code PUK": "code_puk",
    "Blocage de Ligne": "blocage_ligne",
    "Changement d'option/offres": "changement_offre",
    "SAV et support technique": "support_technique",
    "Réclamation": "reclamation",
    "Résiliation": "resiliation",
    "Souscription d'offres de service": "souscription",
}


# Version 1 against the original document, whatever version the other fact tests check
# (CHAT_CAGOU_FICHE, scripts/check_fiche.py): these fixtures override conftest's.
@pytest.fixture(scope="session")
def fiche():
    return load_fiche(DEFAULT_PATH)


@pytest.fixture(scope="session")
def seed_text(document_text: str) -> str:
    return document_text


def seed_matrix(seed_text: str):
    rows = {}
    for line in seed_text.splitlines():
        cols = [c.strip() for c in line.split("\t")]
        cols = [c for c in cols if c] if cols and not cols[0] else cols
        if cols and cols[0] in SEED_ROWS:
            rows[SEED_ROWS[cols[0]]] = dict(zip(CHANNELS, cols[1:4], strict=False))
    return rows


def test_real_fiche_loads(fiche):
    assert set(fiche.procedures) == set(PROCEDURES)
    assert fiche.date_text == "26/07/2021"
    assert all(set(p.cells) == set(CHANNELS) for p in fiche.procedures.values())
    # every placeholder was filled
    assert not any("{" in c.answer for p in fiche.procedures.values() for c in p.cells.values())


def test_matrix_matches_seed(fiche, seed_text):
    matrix = seed_matrix(seed_text)
    assert set(matrix) == set(PROCEDURES), "every procedure row of the seed is found"
    for key, cells in matrix.items():
        for channel, seed_cell in cells.items():
            cell = fiche.procedures[key].cells[channel]
            assert cell.fiche == seed_cell, (key, channel)
            struck = seed_cell.startswith("<del>")
            restricted = seed_cell.startswith("Uniquement")
            expected = "unavailable" if struck else "restricted" if restricted else "available"
            assert cell.status == expected, (key, channel)


def test_contacts_and_hours_match_seed(fiche, seed_text):
    seed = normalise(seed_text)
    for key in ("1000", "1016"):
        phone = fiche.phones[key]
        assert f"au {phone.number} {phone.hours_text}" in seed, key
    assert f"au {fiche.phones['1012'].number} en dehors des horaires, 24h/24 et 7J/7" in seed
    assert f"Le {fiche.abroad_number} depuis l'extérieur" in seed
    assert f"{fiche.agency_name} {fiche.agency_address}" in seed
    assert f"{fiche.postal_name}, {fiche.postal_address}" in seed
    for fact in (
        fiche.email_agence,
        fiche.email_service_clientele,
        fiche.forum,
        fiche.tariff_guide,
        fiche.website,
        fiche.restoration_text,
        fiche.consumption_number,
        fiche.customer_service_calls,
    ):
        assert fact in seed, fact
    assert f"délai de {fiche.restoration_days} jours" in seed
    assert f"au {fiche.date_text}" in seed and fiche.title in seed
    current = {c.current_month for c in fiche.consumption}
    assert current == {True, False}
    assert "Accès à la consommation du mois en cours\tOui\tNon (accès en 2021)\tNon" in seed_text


def test_every_answer_fact_is_in_seed(fiche, seed_text):
    """Numbers, emails and links that the answers carry all appear in the seed document."""
    seed = normalise(seed_text)
    for proc in fiche.procedures.values():
        for cell in proc.cells.values():
            for fact in re.findall(
                r"[\w.-]+@[\w.-]+\w|https?://\S+?(?=[.,)]?(?:\s|$))|\b\d{4}\b", cell.answer
            ):
                assert fact.replace("https://", "") in seed, fact


# --- malformed files --------------------------------------------------------------------------


@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def breaks(raw, mutate):
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(FicheError) as err:
        parse_fiche(data)
    return str(err.value)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["phone_services"]["1000"].pop("opens"), "phone_services.1000.opens"),
        (lambda d: d["phone_services"]["1016"].update(closes="25:00"), "phone_services.1016.closes"),
        (lambda d: d["phone_services"]["1016"].update(opens="16:00"), "phone_services.1016.opens"),
        (lambda d: d["phone_services"]["1000"].update(days=[0, 8]), "phone_services.1000.days"),
        (lambda d: d["phone_services"]["1000"].update(number="1001"), "phone_services.1000.number"),
        (lambda d: d["phone_services"].pop("1012"), "phone_services.1012"),
        (lambda d: d["emails"].update(service_clientele="1000 at opt.nc"), "emails.service_clientele"),
        (
            lambda d: d["procedures"]["code_puk"]["cells"]["telephone"].update(status="peut-être"),
            "procedures.code_puk.cells.telephone.status",
        ),
        (
            lambda d: d["procedures"]["resiliation"]["cells"].pop("courrier"),
            "procedures.resiliation.cells.courrier",
        ),
        (lambda d: d["procedures"].pop("souscription"), "procedures.souscription"),
        (lambda d: d["procedures"].update(portabilite={}), "procedures.portabilite"),
        (
            lambda d: d["procedures"]["perte_vol"]["cells"]["agence"].update(answer="au {tel_9999}"),
            "procedures.perte_vol.cells.agence.answer",
        ),
        (lambda d: d["source"].update(date="26/07/2021"), "source.date"),
        (lambda d: d.update(tariff_guide="http://example.invalid"), "tariff_guide"),
        (lambda d: d["abroad"].update(dial="+687000000"), "abroad.dial"),
        (lambda d: d["restoration"].update(days="quatre"), "restoration.days"),
        (lambda d: d["consumption"][0].update(current_month="oui"), "consumption[0].current_month"),
        (lambda d: d.pop("agency"), "agency"),
        (lambda d: d["agency"].update(address=""), "agency.address"),
    ],
)
def test_malformed_fiche_names_the_field(raw, mutate, field):
    assert field in breaks(raw, mutate)


def test_not_a_mapping():
    with pytest.raises(FicheError, match="table"):
        parse_fiche(["a", "list"])


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "fiche.yml"
    bad.write_text("source: [unclosed\n", encoding="utf-8")
    with pytest.raises(FicheError, match="YAML invalide"):
        load_fiche(bad)
    with pytest.raises(FicheError, match="impossible de lire"):
        load_fiche(tmp_path / "absent.yml")


def test_action_server_refuses_a_malformed_fiche(tmp_path, raw):
    """The action server validates the fiche at start-up and stops, naming the field."""
    raw["phone_services"]["1000"]["closes"] = "7h"
    bad = tmp_path / "fiche.yml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", "0"],
        cwd=ROOT,
        env={**__import__("os").environ, "CHAT_CAGOU_FICHE": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "phone_services.1000.closes" in proc.stderr + proc.stdout
