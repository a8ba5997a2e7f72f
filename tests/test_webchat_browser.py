"""The website widget in headless Chromium (Debian's, driven by Playwright), against the real
servers: web/serve.py serving the page, `rasa run` with credentials.yml allowing the page's
origin. Screenshots go to tests/artifacts/ (kept by CI as artifacts, ignored by git); with
UPDATE_SCREENSHOTS=1 the desktop and phone ones are also copied to docs/screenshots/. The
accessibility checks run axe-core (web/node_modules, a dev dependency of web/package.json).
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
DOCS_SHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
TIMEOUT_MS = 30_000
TIME = re.compile(r"^\d{2}:\d{2}$")
PHONE = {"width": 390, "height": 844}


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


def watched_page(context):
    """A new page of `context` that records dialogs and errors."""
    page = context.new_page()
    page.dialogs = []  # any alert() would land here
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    # Script errors, and console errors such as a CSP violation by an injected handler.
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
    return page


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="fr-FR", viewport={"width": 1000, "height": 760})
    context.set_default_timeout(TIMEOUT_MS)
    yield watched_page(context)
    context.close()


def shot(page, name: str, doc_name: str = "") -> None:
    """A screenshot in tests/artifacts/; with UPDATE_SCREENSHOTS=1, `doc_name` in docs/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"webchat-{name}.png"
    page.screenshot(path=str(path))
    if doc_name and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SHOTS / f"{doc_name}.png")


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


def session_id(page, storage: str = "sessionStorage") -> str:
    return json.loads(page.evaluate(f"{storage}.getItem('chat-cagou:session')"))


def greeted(page) -> None:
    from playwright.sync_api import expect

    wait_online(page)
    expect(page.locator(".cc-bot .cc-bubble").first).to_contain_text("assistant automatique")


def assert_times(page) -> list[str]:
    """Every message shows its time as hh:mm, in a <time> whose datetime says the same instant;
    returns the times shown."""
    messages = page.locator(".cc-message")
    times = page.locator(".cc-message > time.cc-time")
    assert times.count() == messages.count() > 0
    shown = times.all_inner_texts()
    for i, text in enumerate(shown):
        assert TIME.match(text), text
        stamp = times.nth(i).get_attribute("datetime")
        local = page.evaluate(
            "s => new Date(s).toLocaleTimeString('fr-FR', {hour: '2-digit', minute: '2-digit'})", stamp
        )
        assert local == text
    return shown


def disabled(buttons) -> list[bool]:
    return [buttons.nth(i).is_disabled() for i in range(buttons.count())]


def check_accessibility(page, where: str) -> list[dict]:
    """axe-core's default rules (WCAG 2.x A/AA and best practices) on the whole page: every
    violation is printed, and none may be serious or critical. Returns the violations."""
    if not AXE.is_file():
        pytest.fail("web/node_modules/axe-core missing: run `npm ci` in web/ (make install does it)")
    if not page.evaluate("typeof window.axe === 'object'"):
        # Evaluated rather than added as a <script> tag: the page's CSP (script-src 'self')
        # blocks inline scripts, and the test must not loosen it. The trailing 0 keeps
        # Playwright from reading the file as a function to call.
        page.evaluate(AXE.read_text() + "\n;0")
    violations = page.evaluate(
        """() => axe.run(document).then(result => result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary),
        })))"""
    )
    for violation in violations:
        print(f"axe, {where}: {violation['impact']} {violation['id']} ({violation['help']})")
        for node in violation["nodes"]:
            print("   ", node)
    assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == [], where
    return violations


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

    expect(chips.first).to_be_enabled()
    puk = ask(page, "code PUK ?", "Code PUK :")
    expect(puk.locator("a[href='https://www.opt.nc']")).to_have_count(1)
    # The conversation moved on: the first message's buttons are past, without a click.
    expect(chips.first).to_be_disabled()
    assert disabled(chips) == [True] * 6
    phones = ask(page, "quels sont vos numéros de téléphone ?", "Nos numéros")
    expect(phones.locator("a[href='tel:1000']").first).to_be_visible()
    expect(phones.locator("a[href='tel:+687268770']")).to_have_count(1)
    resiliation = ask(page, "je veux résilier", "Résiliation :")

    # The buttons of the résiliation answer: "En agence" sends its payload, shows its title.
    buttons = resiliation.locator("xpath=..").locator(".cc-button")
    expect(buttons).to_have_text(["En agence", "Par mail / internet"])
    expect(buttons.first).to_be_enabled()
    buttons.filter(has_text="En agence").click()
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text("En agence")
    agency = page.locator(".cc-bot .cc-bubble").filter(has_text="Démarche : Résiliation.")
    expect(agency.locator("strong")).to_have_text(re.compile(r"^Oui, en agence"))
    expect(buttons.first).to_be_disabled()
    expect(buttons.first).to_have_class(re.compile(r"\bcc-chosen\b"))
    assert disabled(buttons) == [True, True]

    # a factual answer: "did this help?" (asked once per topic: not again after "et par mail ?")
    expect(page.locator(".cc-bot .cc-bubble").last).to_have_text("Cette réponse vous a-t-elle aidé ?")
    by_mail = ask(page, "et par mail ?", "Oui, par courrier")
    expect(by_mail.locator("a[href='mailto:1000@opt.nc']")).to_have_text("1000@opt.nc")
    expect(by_mail.locator("a[href='https://www.opt.nc']")).to_have_attribute("rel", "noopener noreferrer")
    # Only the last answer's buttons (if it has any) are still usable.
    last_row = by_mail.locator("xpath=..")
    assert page.locator(".cc-button:enabled").count() == last_row.locator(".cc-button:enabled").count()
    # Who says what, for screen readers; the time of each message.
    expect(page.locator(".cc-bot > .cc-sr").first).to_have_text("Chat Cagou :")
    expect(page.locator(".cc-user > .cc-sr").first).to_have_text("Vous :")
    times = assert_times(page)
    enabled = page.locator(".cc-button:enabled").all_inner_texts()
    shot(page, "1-conversation")

    session = session_id(page)
    history = page.locator(".cc-message").all_inner_texts()
    page.reload()
    wait_online(page)
    expect(page.locator(".cc-message")).to_have_count(len(history))
    assert page.locator(".cc-message").all_inner_texts() == history
    assert session_id(page) == session
    # The same times and the same past buttons after the reload.
    assert assert_times(page) == times
    assert page.locator(".cc-button:enabled").all_inner_texts() == enabled
    assert disabled(chips) == [True] * 6
    shot(page, "2-after-reload")

    # Same conversation: "et par téléphone ?" still refers to the résiliation.
    ask(page, "et par téléphone ?", "Non, pas par téléphone")
    shot(page, "3-continued")
    expected = [
        "/demarrer",
        "code PUK ?",
        "quels sont vos numéros de téléphone ?",
        "je veux résilier",
        '/resiliation{"canal":"agence"}',
        "et par mail ?",
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


def test_unread_badge_escape_and_keyboard(site, page):
    from playwright.sync_api import expect

    url, _ = site
    # Once armed, a staff member joining and their message are added to the next polling
    # response that carries a bot message (routed from the start: a long poll already waiting
    # would escape the route).
    injected = {"armed": False}

    def add_agent_message(route):
        if route.request.method != "GET":
            route.continue_()
            return
        response = route.fetch()  # a long poll: armed or not is known when it answers
        body = response.text()
        if not injected["armed"] or "bot_uttered" not in body:
            route.fulfill(response=response, body=body)
            return
        joined = {
            "text": "Un conseiller a rejoint la conversation : Marie.",
            "agent": "Marie",
            "notice": "joined",
        }
        message = {"text": "Je regarde votre dossier.", "agent": "Marie"}
        packets = ["42" + json.dumps(["bot_uttered", m]) for m in (joined, message)]
        injected["armed"] = False
        route.fulfill(response=response, body="\x1e".join([body, *packets]))

    page.route("**/socket.io/**", add_agent_message)
    page.goto(url)
    greeted(page)
    panel, launcher, badge = (
        page.locator(".cc-panel"),
        page.locator(".cc-launcher"),
        page.locator(".cc-badge"),
    )
    expect(page.get_by_role("dialog", name="Chat Cagou")).to_be_visible()
    expect(page.get_by_role("log", name="Messages de la conversation")).to_have_attribute(
        "aria-live", "polite"
    )
    expect(page.locator(".cc-status")).to_have_attribute("role", "status")

    # Esc closes the panel and gives the focus back to the launcher; opening focuses the input.
    page.locator(".cc-input").focus()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(badge).to_be_hidden()
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(page.locator(".cc-input")).to_be_focused()

    # A question sent, then the panel closed before anything can come back (one task): the
    # answer, a staff member joining and their message arrive while it is closed.
    injected["armed"] = True
    page.locator(".cc-input").fill("code PUK ?")
    page.evaluate("() => { document.querySelector('.cc-send').click(); window.ChatCagou.close(); }")
    expect(panel).to_be_hidden()
    expect(badge).to_have_text("3")
    expect(badge).to_have_attribute("aria-label", "3 nouveaux messages")
    expect(page.get_by_role("button", name="Discuter avec Chat Cagou 3 nouveaux messages")).to_be_visible()
    expect(page.locator(".cc-root > [role=status]")).to_have_text("3 nouveaux messages")
    page.unroute_all(behavior="ignoreErrors")
    shot(page, "5-unread-badge")
    page.reload()  # the count is kept with the history
    wait_online(page)
    expect(badge).to_have_text("3")
    launcher.click()
    expect(badge).to_be_hidden()
    expect(page.locator(".cc-input")).to_be_focused()
    agent = page.locator(".cc-agent")
    expect(agent.locator(".cc-sr")).to_have_text("Marie (conseiller) :")
    expect(agent.locator(".cc-author")).to_have_attribute("aria-hidden", "true")

    # In a live chat the customer's messages do not make the last answer's buttons past (the
    # handoff answer's "Revenir à l'assistant"); checked in the same task as the sending, before
    # any answer. The assistant's next answer does.
    answers = page.locator(".cc-bot").count()
    puk_buttons = page.locator(".cc-bot").nth(answers - 1).locator(".cc-button")
    expect(puk_buttons).not_to_have_count(0)
    still_enabled = page.evaluate(
        """() => {
            document.querySelector('.cc-input').value = 'merci';
            document.querySelector('.cc-send').click();
            return [...document.querySelectorAll('.cc-bot')].pop().querySelectorAll('.cc-button:enabled').length;
        }"""
    )
    assert still_enabled == puk_buttons.count() > 0
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text("merci")
    expect(page.locator(".cc-bot")).to_have_count(answers + 1)
    assert disabled(puk_buttons) == [True] * puk_buttons.count()
    ask(page, "je veux résilier", "Résiliation :")

    # Tab order: header buttons, log, the log's links and current buttons, input, send.
    page.locator(".cc-reset").focus()
    order = []
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement; return e.className || e.tagName.toLowerCase(); }"
        )
        order.append(focused)
        if focused == "cc-send":
            break
    assert order[:2] == ["cc-icon cc-close", "cc-log"], order
    assert order[-2:] == ["cc-input", "cc-send"], order
    assert set(order[2:-2]) <= {"cc-link", "cc-button"}, order
    assert "cc-button" in order  # the résiliation answer's buttons
    # A visible focus outline (3 px), on the blue header and on the white log.
    page.locator(".cc-close").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"

    # A button with the keyboard: sent, and the focus goes on to the input.
    current = page.locator(".cc-button:enabled").first
    title = current.inner_text()
    current.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineWidth") == "3px"
    page.keyboard.press("Enter")
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text(title)
    expect(page.locator(".cc-input")).to_be_focused()
    page.keyboard.press("Escape")
    expect(launcher).to_be_focused()
    assert page.dialogs == [] and page.errors == []


def test_offline_keeps_the_typed_message(site, page):
    from playwright.sync_api import expect

    url, _ = site
    page.goto(url)
    greeted(page)
    send, note = page.locator(".cc-send"), page.locator(".cc-offline-note")
    expect(note).to_be_hidden()
    page.context.set_offline(True)
    expect(page.locator(".cc-status")).to_have_text("Connexion perdue, nouvelle tentative…")
    expect(send).to_be_disabled()
    expect(note).to_be_visible()
    expect(note).to_contain_text("votre message reste dans le champ")
    expect(page.locator(".cc-input")).to_have_attribute("aria-describedby", "chat-cagou-offline")
    page.locator(".cc-input").fill("code PUK ?")
    page.locator(".cc-input").press("Enter")  # refused offline: the text stays
    expect(page.locator(".cc-input")).to_have_value("code PUK ?")
    expect(page.locator(".cc-user")).to_have_count(0)
    shot(page, "6-offline")
    page.context.set_offline(False)
    wait_online(page)
    expect(note).to_be_hidden()
    send.click()
    expect(page.locator(".cc-user .cc-bubble")).to_have_text(["code PUK ?"])
    expect(page.locator(".cc-bot .cc-bubble").filter(has_text="Code PUK :")).to_have_count(1)
    assert page.dialogs == []


def test_local_storage_shares_the_conversation_between_tabs(site, page):
    from playwright.sync_api import expect

    url, _ = site

    # The embed line with data-storage="local", set before the deferred script runs. (A page
    # fulfilled by a route would not do: Chromium would not count it as loopback, and its
    # Local Network Access checks would block the calls to Rasa.)
    page.context.add_init_script(
        """new MutationObserver((_, observer) => {
            const tag = document.querySelector('script[src$="chat-cagou.js"]');
            if (tag) { tag.dataset.storage = "local"; observer.disconnect(); }
        }).observe(document, {childList: true, subtree: true});"""
    )
    page.goto(url)
    greeted(page)
    ask(page, "code PUK ?", "Code PUK :")
    assert page.evaluate("sessionStorage.getItem('chat-cagou:history')") is None
    other = watched_page(page.context)
    other.goto(url)
    wait_online(other)
    assert session_id(other, "localStorage") == session_id(page, "localStorage")
    expect(other.locator(".cc-message")).to_have_count(page.locator(".cc-message").count())
    assert other.locator(".cc-message").all_inner_texts() == page.locator(".cc-message").all_inner_texts()

    # A question in the second tab: both tabs show it and its answer, once each (both sockets
    # receive the answer).
    ask(other, "je veux résilier", "Résiliation :")
    expect(page.locator(".cc-user .cc-bubble").last).to_have_text("je veux résilier")
    expect(page.locator(".cc-bot .cc-bubble").filter(has_text="Résiliation :")).to_have_count(1)
    other.wait_for_timeout(500)  # time for a duplicate to show, if any
    texts = page.locator(".cc-message").all_inner_texts()
    assert other.locator(".cc-message").all_inner_texts() == texts
    assert len(texts) == 5  # greeting, 2 questions, 2 answers
    # Its buttons were taken in the first tab: past in the second one too.
    page.locator(".cc-bot").last.locator(".cc-button").first.click()
    expect(other.locator(".cc-user .cc-bubble").last).to_have_text("En agence")
    for tab in (page, other):
        expect(tab.locator(".cc-bot .cc-bubble").filter(has_text="Oui, en agence")).to_have_count(1)
        expect(tab.locator(".cc-bot .cc-bubble").last).to_have_text("Cette réponse vous a-t-elle aidé ?")
    assert disabled(other.locator(".cc-button")) == disabled(page.locator(".cc-button"))
    assert disabled(other.locator(".cc-bot").nth(2).locator(".cc-button")) == [True, True]
    assert page.dialogs == [] and page.errors == [] and other.errors == []


def test_accessibility_phone_layout_and_screenshots(site, browser):
    """axe-core on the open widget with its first message, on a conversation with a button
    answer, and on a phone, where the panel covers the screen."""
    from playwright.sync_api import expect

    url, _ = site
    desktop = browser.new_context(
        locale="fr-FR", timezone_id="Pacific/Noumea", viewport={"width": 1000, "height": 760}
    )
    phone = browser.new_context(
        locale="fr-FR", timezone_id="Pacific/Noumea", viewport=PHONE, is_mobile=True, has_touch=True
    )
    try:
        for context in (desktop, phone):
            context.set_default_timeout(TIMEOUT_MS)
        page = watched_page(desktop)
        page.goto(url)
        greeted(page)
        check_accessibility(page, "first message")
        ask(page, "code PUK ?", "Code PUK :")
        answer = ask(page, "je veux résilier", "Résiliation :")
        expect(answer.locator("xpath=..").locator(".cc-button:enabled")).to_have_count(2)
        expect(page.locator(".cc-button:disabled")).not_to_have_count(0)
        check_accessibility(page, "conversation with a button answer")
        shot(page, "7-desktop", "widget-desktop")
        box = page.locator(".cc-panel").bounding_box()
        assert box["width"] <= 380 and box["x"] > 0  # a floating panel, not full screen

        mobile = watched_page(phone)
        mobile.goto(url)
        greeted(mobile)
        ask(mobile, "code PUK ?", "Code PUK :")
        box = mobile.locator(".cc-panel").bounding_box()
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, PHONE["width"], PHONE["height"])
        font_size = mobile.locator(".cc-input").evaluate("e => getComputedStyle(e).fontSize")
        assert font_size == "16px"  # iOS Safari zooms on an input under 16 px
        check_accessibility(mobile, "phone")
        shot(mobile, "8-phone", "widget-phone")
        mobile.locator(".cc-close").click()
        expect(mobile.locator(".cc-panel")).to_be_hidden()
        launcher = mobile.locator(".cc-launcher").bounding_box()
        assert launcher["x"] + launcher["width"] <= PHONE["width"]
        assert launcher["y"] + launcher["height"] <= PHONE["height"]
        check_accessibility(mobile, "phone, closed")
        assert page.errors == [] and mobile.errors == []
    finally:
        desktop.close()
        phone.close()
