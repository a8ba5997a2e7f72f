"""web/serve.py in-process over real HTTP: the files it serves and the privacy page, whose
retention comes from CHAT_CAGOU_RETENTION_DAYS (the setting the console applies)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from harness.ports import free_port
from harness.web_page import load_serve, running_web_page

serve = load_serve()


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), ""


@pytest.fixture(scope="module")
def site():
    if not serve.SOCKET_IO.is_file():
        pytest.skip("web/node_modules missing (make install)")
    with running_web_page(free_port(), "http://localhost:5005", retention_days="120") as url:
        yield url


def test_privacy_page_states_the_retention_setting(site):
    status, headers, body = get(site + "confidentialite")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "conservés 120 jours, puis effacés automatiquement" in body
    assert "{{" not in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("365", "conservés 365 jours"),
        (" 30 ", "conservés 30 jours"),
        (None, "jusqu'à leur effacement"),
        ("", "jusqu'à leur effacement"),
        ("0", "jusqu'à leur effacement"),
        ("abc", "jusqu'à leur effacement"),
    ],
)
def test_retention_sentence(value, expected):
    assert expected in serve.retention_text(value)


def test_only_listed_files_are_served(site):
    assert get(site + "chat-cagou.js")[0] == 200
    assert get(site + "../README.md")[0] == 404
    assert get(site + "confidentialite.html")[0] == 404  # the page is /confidentialite, rendered
