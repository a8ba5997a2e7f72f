"""The website widget in headless Chromium (Debian's, driven by Playwright), against the real
servers: web/serve.py serving the page, `rasa run` with credentials.yml allowing the page's
origin. Screenshots go to tests/artifacts/ (kept by CI as artifacts, ignored by git).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness.browser import launched_chromium
from harness.ports import free_port
from harness.project import ROOT
from harness.servers import running_servers
from harness.web_page import running_web_page
from tests.conftest import require_chromium, require_model, skip_without_chromium

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.browser, skip_without_chromium]

ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple]:
    """(page URL, servers): the page on a free port, Rasa allowing that origin only."""
    require_model()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("webchat")
    with (
        running_servers(
            workdir,
            extra_env={
                "CHAT_CAGOU_WEB_ORIGINS": origin,
                "CHAT_CAGOU_PRIVACY_URL": f"{origin}/confidentialite",
                "CHAT_CAGOU_RETENTION_DAYS": "90",
            },
        ) as servers,
        running_web_page(port, servers.rasa_url, retention_days="90") as url,
    ):
        yield url, servers


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="fr-FR", viewport={"width": 1000, "height": 760})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.dialogs = []  # any alert() would land here
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    # Script errors, and console errors such as a CSP violation by an injected handler.
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webchat-{name}.png"))


def wait_online(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".cc-status")).to_have_text("En ligne")


def ask(page, text: str, answer: str):
    """Types `text`, sends it, returns the bot bubble containing `answer` that appears."""
    from playwright.sync_api import expect

    bubbles = page.locator(".cc-bot .cc-bubble").filter(has_text=answer)
    before = bubbles.count()
    page.locator(".cc-input").fill(text)
    page.locator(".cc-send").click()
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text(text)
    expect(bubbles).to_have_count(before + 1)
    return bubbles.last


def session_id(page) -> str:
    return json.loads(page.evaluate("sessionStorage.getItem('chat-cagou:session')"))


def test_conversation_buttons_reload_and_continuation(site, page):
    from playwright.sync_api import expect

    url, servers = site
    page.goto(url)
    expect(page).to_have_title("Chat Cagou")
    expect(page.locator(".cc-panel .cc-title")).to_have_text("Chat Cagou")
    expect(page.locator(".cc-input")).to_have_attribute("placeholder", "Écrivez votre message…")
    expect(page.locator(".cc-send")).to_have_text("Envoyer")
    wait_online(page)
    # The assistant's first message, asked for by the widget on first open.
    greeting = page.locator(".cc-bot .cc-bubble").first
    expect(greeting).to_contain_text("assistant automatique")
    expect(greeting).to_contain_text("Confidentialité : vos messages sont conservés 90 jours, puis effacés")
    privacy = greeting.locator("a[href$='/confidentialite']")
    expect(privacy).to_have_count(1)
    chips = greeting.locator("xpath=..").locator(".cc-button")
    expect(chips).to_have_text(
        ["Perte ou vol", "Code PUK", "Résiliation", "Horaires", "Nous contacter", "Un conseiller"]
    )
    expect(page.locator(".cc-user")).to_have_count(0)  # the start payload is not shown
    # The page it links to says the same retention, from the same setting.
    notice = page.context.new_page()
    notice.goto(privacy.get_attribute("href"))
    expect(notice.locator("main")).to_contain_text("conservés 90 jours, puis effacés automatiquement")
    notice.close()

    puk = ask(page, "code PUK ?", "Code PUK :")
    expect(puk.locator("a[href='https://www.opt.nc']")).to_have_count(1)
    resiliation = ask(page, "je veux résilier", "Résiliation :")
    by_mail = ask(page, "et par mail ?", "Résiliation — Par courrier")
    expect(by_mail.locator("a[href='mailto:1000@opt.nc']")).to_have_text("1000@opt.nc")
    expect(by_mail.locator("a[href='https://www.opt.nc']")).to_have_attribute("rel", "noopener noreferrer")
    phones = ask(page, "quels sont vos numéros de téléphone ?", "Nos numéros")
    expect(phones.locator("a[href='tel:1000']").first).to_be_visible()
    expect(phones.locator("a[href='tel:+687268770']")).to_have_count(1)

    # The buttons of the résiliation answer: "En agence" sends its payload, shows its title.
    buttons = resiliation.locator("xpath=..").locator(".cc-button")
    expect(buttons).to_have_text(["En agence", "Par mail / internet"])
    buttons.filter(has_text="En agence").click()
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text("En agence")
    expect(page.locator(".cc-bot .cc-bubble").filter(has_text="Résiliation — En agence")).to_have_count(1)
    expect(buttons.first).to_be_disabled()
    shot(page, "1-conversation")

    session = session_id(page)
    history = page.locator(".cc-message").all_inner_texts()
    page.reload()
    wait_online(page)
    expect(page.locator(".cc-message")).to_have_count(len(history))
    assert page.locator(".cc-message").all_inner_texts() == history
    assert session_id(page) == session
    shot(page, "2-after-reload")

    # Same conversation: "et par téléphone ?" still refers to the résiliation.
    ask(page, "et par téléphone ?", "Résiliation — Par téléphone")
    shot(page, "3-continued")
    expected = [
        "/demarrer",
        "code PUK ?",
        "je veux résilier",
        "et par mail ?",
        "quels sont vos numéros de téléphone ?",
        '/resiliation{"canal":"agence"}',
        "et par téléphone ?",
    ]
    assert servers.wait_user_texts(session, expected) == expected
    assert page.dialogs == [] and page.errors == []


# Bot messages are injected into a real long-polling response (the bot itself never echoes HTML).
BOT_ATTACK = (
    "Réponse <img src=x onerror=\"window.__xss=1;alert('bot')\"> "
    "<script>window.__xss=2</script> javascript:alert(1)"
)
BOT_ATTACK_BUTTON = '<b onmouseover="window.__xss=3">piège</b>'


def test_html_is_shown_as_text_and_never_run(site, page):
    from playwright.sync_api import expect

    url, _ = site
    page.add_init_script("window.__xss = 0")
    injected = {"done": False}

    def inject(route):
        # Appends a bot_uttered packet to the first polling response that carries one.
        if injected["done"] or route.request.method != "GET":
            route.continue_()
            return
        response = route.fetch()
        body = response.text()
        if "bot_uttered" not in body:
            route.fulfill(response=response, body=body)
            return
        packet = "42" + json.dumps(
            [
                "bot_uttered",
                {
                    "text": BOT_ATTACK,
                    "quick_replies": [
                        {"content_type": "text", "title": BOT_ATTACK_BUTTON, "payload": "/greet"}
                    ],
                },
            ]
        )
        injected["done"] = True
        route.fulfill(response=response, body=body + "\x1e" + packet)

    page.route("**/socket.io/**", inject)
    page.goto(url)
    wait_online(page)
    attacks = [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<img src=x onerror="window.__xss=4">',
        '<a href="javascript:alert(1)">clic</a>',
    ]
    for attack in attacks:
        page.locator(".cc-input").fill(attack)
        page.locator(".cc-send").click()
        expect(page.locator(".cc-user .cc-bubble").last).to_have_text(attack)
    expect(page.locator(".cc-bot .cc-bubble").filter(has_text="Réponse <img")).to_have_count(1)
    expect(page.locator(".cc-button").filter(has_text=BOT_ATTACK_BUTTON)).to_have_count(1)
    page.unroute("**/socket.io/**")
    shot(page, "4-html-as-text")

    def assert_inert():
        log = page.locator(".cc-log")
        assert log.locator("img, script, b, iframe, svg").count() == 0
        assert log.locator("a[href^='javascript']").count() == 0
        texts = page.locator(".cc-user .cc-bubble").all_inner_texts()
        assert all(attack in texts for attack in attacks)
        assert BOT_ATTACK in page.locator(".cc-bot .cc-bubble").all_inner_texts()
        assert page.evaluate("window.__xss") == 0
        assert page.dialogs == [] and page.errors == []

    assert_inert()
    page.locator(".cc-button").filter(has_text=BOT_ATTACK_BUTTON).hover()
    assert_inert()
    page.reload()  # the history is rendered again from sessionStorage: still text
    wait_online(page)
    expect(page.locator(".cc-user .cc-bubble")).to_have_count(len(attacks))
    assert_inert()
