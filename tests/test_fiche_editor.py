"""The fiche editor of the console (/fiche, issue 16), in-process: the form built from the
published version, errors next to their field, the preview (diff and changed answers from the
real answer functions), publication, rollback, roles. Real SQLite, real loader; the browser and
the production topology are in tests/test_fiche_browser.py."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from starlette.testclient import TestClient

from actions import fiche_versions
from actions.fiche import DEFAULT_PATH
from console import auth, fiche_editor
from tests.test_console_app import (  # fixtures too
    ADMIN,
    BASE_URL,
    FAST_SCRYPT_N,
    VIEWER,
    app,
    client,
    console_app,
    csrf_of,
    db_path,
    login,
    template_db,
)

EDITOR = ("elise", "mot-de-passe-editrice-1")
SEED = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
CLOSES = "phone_services.1000.closes"
CELL = "procedures.changement_offre.cells.telephone"


def form_of(raw: dict, **changes: str | list[str]) -> dict[str, list[str]]:
    """What the browser submits for the form of `raw`, with `changes` (field path -> value)."""
    form: dict[str, list[str]] = {}
    for f in fiche_editor.fields_of(raw):
        if f.kind == "days":
            form[f.path] = [str(d) for d in f.value]
        elif f.kind == "bool":
            form[f.path] = ["1"] if f.value else []
        else:
            form[f.path] = [str(f.value)]
    for path, value in changes.items():
        form[path.replace("__", ".")] = value if isinstance(value, list) else [value]
    return form


def the_change() -> dict[str, str]:
    return {
        CLOSES: "16:30",
        f"{CELL}.status": "unavailable",
        f"{CELL}.answer": "le changement d'offre ne se fait plus par téléphone.",
    }


def errors(submission: fiche_editor.Submission) -> dict[str, str]:
    return {f.path: f.error for f in submission.fields if f.error}


# --- the form -----------------------------------------------------------------------------


def test_every_value_of_the_fiche_is_a_field_except_the_documents_identity():
    fields = {f.path: f for f in fiche_editor.fields_of(SEED)}
    values = fiche_editor.values_of(SEED)
    assert set(fields) == {p for p in values if not p.startswith("source.") and p != "abroad.dial"}
    assert fields[CLOSES].kind == "time" and fields["phone_services.1000.days"].kind == "days"
    assert fields[f"{CELL}.status"].kind == "status" and fields["restoration.days"].kind == "int"
    assert fields["consumption.0.current_month"].kind == "bool"
    assert (
        fields[f"{CELL}.answer"].label
        == "Changement d'option ou d'offre — Par téléphone — réponse de l'assistant"
    )


def test_the_unchanged_form_is_the_published_fiche():
    submission = fiche_editor.read_form(SEED, form_of(SEED))
    assert submission.ok and submission.raw == SEED


def test_each_faulty_field_gets_its_own_french_message():
    submission = fiche_editor.read_form(
        SEED,
        form_of(
            SEED,
            **{
                CLOSES: "06:00",
                "emails.agence": "agence chez opt",
                "restoration.days": "quatre",
                "phone_services.1016.days": [],
                f"{CELL}.status": "unavailable",
                "contact_form": "www.opt.nc",
            },
        ),
    )
    found = errors(submission)
    assert set(found) == {
        CLOSES,
        "emails.agence",
        "restoration.days",
        "phone_services.1016.days",
        f"{CELL}.answer",
        "contact_form",
    }
    assert "doit précéder" in found[CLOSES]
    assert "format invalide" in found["emails.agence"]
    assert found["restoration.days"] == "un nombre entier est attendu"
    assert found["phone_services.1016.days"] == "cochez au moins un jour"
    assert "ne convient pas" in found[f"{CELL}.answer"]  # a struck cell whose answer still says "via le 1000"
    assert "https://" in found["contact_form"]
    assert not submission.ok


def test_the_number_from_abroad_carries_its_dial_form():
    submission = fiche_editor.read_form(SEED, form_of(SEED, **{"abroad.number": "+687 26 87 71"}))
    assert submission.ok
    assert submission.raw["abroad"]["dial"] == "+687268771"


def test_the_preview_lists_the_changes_and_the_answers_that_change():
    submission = fiche_editor.read_form(SEED, form_of(SEED, **the_change()))
    assert submission.ok
    assert fiche_editor.changed_fields(SEED, submission.raw) == [
        (CLOSES, "15:45", "16:30"),
        (f"{CELL}.status", "disponible", "pas par ce canal (barré)"),
        (
            f"{CELL}.answer",
            "via le Service Clientèle au {tel_1000} ({heures_1000}).",
            "le changement d'offre ne se fait plus par téléphone.",
        ),
    ]
    before = fiche_versions.fiche_of(DEFAULT_PATH.read_text(encoding="utf-8"))
    after = fiche_versions.fiche_of(submission.content, 2)
    changes = {c.name: c for c in fiche_editor.changed_answers(before, after)}
    total = fiche_editor.answer_catalogue(after)
    assert 0 < len(changes) < len(total)
    by_phone = changes["Changement d'option ou d'offre — par téléphone, depuis la Nouvelle-Calédonie"]
    assert by_phone.before[0] == (by_phone.before[0][0], True) and by_phone.before[0][0].startswith(
        "Oui, par téléphone"
    )
    assert by_phone.after[0][0].startswith("Non, pas par téléphone") and by_phone.after[0][1]
    hours = changes["Horaires — un lundi à 16h, depuis la Nouvelle-Calédonie"]
    assert any("16h30" in line and changed for line, changed in hours.after)
    assert not any("16h30" in line for line, _ in hours.before)
    # answers that do not depend on what changed are not listed
    assert not any(name.startswith("Code PUK") for name in changes)


# --- the console --------------------------------------------------------------------------


@pytest.fixture
def editor(app, client) -> TestClient:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
        auth.upsert_user(app.state.engine, EDITOR[0], "editor", EDITOR[1])
    assert login(client, EDITOR, "/fiche").status_code == 303
    return client


def published(engine) -> int:
    with engine.connect() as conn:
        return fiche_versions.published_number(conn)


def preview(client: TestClient, **changes: str) -> tuple[int, str]:
    page = client.get("/fiche")
    form = form_of(SEED, **changes)
    form["csrf_token"] = [csrf_of(page.text)]
    reply = client.post("/fiche/apercu", data=form)
    return reply.status_code, reply.text


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, name
    return html.unescape(found.group(1))


def test_an_editor_previews_publishes_and_rolls_back(app, editor):
    page = editor.get("/fiche")
    assert page.status_code == 200
    assert 'name="phone_services.1000.closes" value="15:45"' in page.text
    assert "Version publiée : <strong>1</strong>" in page.text

    status, shown = preview(editor, **the_change())
    assert status == 200, shown
    assert "Ce qui change par rapport à la version 1" in shown
    assert "<del>15:45</del>" in shown and "<ins>16:30</ins>" in shown
    assert "<ins>Non, pas par téléphone" in shown
    assert published(app.state.engine) == 1, "a preview publishes nothing"

    token, content = csrf_of(shown), hidden(shown, "content")
    refused = editor.post(
        "/fiche/publier", data={"csrf_token": token, "content": content, "base": "1", "reason": ""}
    )
    assert refused.status_code == 400 and "Indiquez la raison" in refused.text
    done = editor.post(
        "/fiche/publier",
        data={"csrf_token": token, "content": content, "base": "1", "reason": "Nouveaux horaires"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/fiche"
    assert published(app.state.engine) == 2
    page = editor.get("/fiche").text
    assert "Version 2 publiée" in page and 'name="phone_services.1000.closes" value="16:30"' in page
    assert "Nouveaux horaires" in page and EDITOR[0] in page

    back = editor.post("/fiche/retablir", data={"csrf_token": csrf_of(page), "version": "1"})
    assert back.status_code == 303
    assert published(app.state.engine) == 1
    page = editor.get("/fiche").text
    assert "Version 1 rétablie" in page and "Retour à la version 1" in page
    assert 'name="phone_services.1000.closes" value="15:45"' in page


def test_a_faulty_form_is_shown_again_with_the_errors_and_nothing_is_published(app, editor):
    status, shown = preview(editor, **{CLOSES: "06:00", f"{CELL}.status": "unavailable"})
    assert status == 400
    assert "La fiche n'est pas valide" in shown
    assert re.search(r'data-field="phone_services.1000.closes">[^<]*doit précéder', shown)
    assert re.search(rf'data-field="{CELL}.answer">[^<]*ne convient pas', shown)
    assert 'name="phone_services.1000.closes" value="06:00"' in shown, "what was typed is kept"
    assert published(app.state.engine) == 1


def test_a_publication_past_the_preview_is_still_validated(app, editor):
    token = csrf_of(editor.get("/fiche").text)
    bad = DEFAULT_PATH.read_text(encoding="utf-8").replace('closes: "15:45"', 'closes: "15h45"')
    refused = editor.post(
        "/fiche/publier", data={"csrf_token": token, "content": bad, "base": "1", "reason": "x"}
    )
    assert refused.status_code == 400 and "phone_services.1000.closes" in refused.text
    assert published(app.state.engine) == 1


def test_a_change_prepared_on_an_older_version_is_previewed_again(app, editor):
    _, shown = preview(editor, **the_change())
    fiche_versions.publish(
        app.state.engine,
        fiche_versions.dump({**SEED, "forum": "forum.opt.nc"}),
        "quelqu.un",
        "autre changement",
    )
    reply = editor.post(
        "/fiche/publier",
        data={"csrf_token": csrf_of(shown), "content": hidden(shown, "content"), "base": "1", "reason": "x"},
    )
    assert reply.status_code == 400 and "La version 2 a été publiée pendant que vous prépariez" in reply.text
    assert published(app.state.engine) == 2


def test_a_viewer_cannot_edit_and_an_editor_cannot_manage_accounts(app, client):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
        auth.upsert_user(app.state.engine, EDITOR[0], "editor", EDITOR[1])
    assert login(client, VIEWER).status_code == 303
    assert 'href="/fiche"' not in client.get("/conversations").text
    assert client.get("/fiche").status_code == 403
    token = csrf_of(client.get("/conversations").text)
    content = DEFAULT_PATH.read_text(encoding="utf-8").replace("optetvous.nc", "forum.opt.nc")
    for path, data in (
        ("/fiche/apercu", form_of(SEED)),
        ("/fiche/publier", {"content": content, "base": "1", "reason": "x"}),
        ("/fiche/retablir", {"version": "1"}),
    ):
        refused = client.post(path, data={**data, "csrf_token": token})
        assert refused.status_code == 403 and "éditeur" in refused.text, path
    assert published(app.state.engine) == 1

    client.post("/logout", data={"csrf_token": token})
    assert login(client, EDITOR).status_code == 303
    assert 'href="/fiche"' in client.get("/conversations").text
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/erase").status_code == 403
    token = csrf_of(client.get("/conversations").text)
    assert (
        client.post("/admin/purge", data={"csrf_token": token, "days": "0", "confirm": "yes"}).status_code
        == 403
    )


def test_versions_survive_a_console_restart(db_path: Path, app, editor):
    _, shown = preview(editor, **the_change())
    editor.post(
        "/fiche/publier",
        data={
            "csrf_token": csrf_of(shown),
            "content": hidden(shown, "content"),
            "base": "1",
            "reason": "horaires",
        },
    )
    app.state.engine.dispose()
    again = console_app(db_path)
    with TestClient(again, base_url=BASE_URL, follow_redirects=False) as restarted:
        assert login(restarted, ADMIN, "/fiche").status_code == 303
        page = restarted.get("/fiche").text
    again.state.engine.dispose()
    assert "Version publiée : <strong>2</strong>" in page
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        assert [v.number for v in fiche_versions.all_versions(conn)] == [2, 1]
    engine.dispose()


def test_the_console_shows_what_each_action_server_serves(app, editor):
    engine = app.state.engine
    fiche_versions.report_server(engine, "actions-1", 1, 1, "")
    fiche_versions.report_server(
        engine, "actions-2", 1, 2, "version 2 refusée : fiche: champ manquant 'emails'"
    )
    page = editor.get("/fiche").text
    servers = page.split('id="servers"', 1)[1].split("</table>", 1)[0]
    assert "actions-1" in servers and "à jour" in servers
    assert (
        "actions-2" in servers and "version 2 refusée" in servers and "sert toujours la version 1" in servers
    )
