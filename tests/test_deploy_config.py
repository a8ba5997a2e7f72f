"""deploy/docker-compose.yml is consistent with the topology the tests run (deploy/prod.py).

No Docker engine on these machines: the compose file is checked as configuration, with
`docker-compose config` when the client is installed (.ci/run installs Debian's), and by
comparing it with what `make run-prod` really starts: same endpoints, credentials and nginx
template files, same environment variable names, same commands and ports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.prod import DEFAULTS, ENDPOINTS, NGINX_TEMPLATE, Topology, render, settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
SECRETS = {"RASA_AUTH_TOKEN", "DB_PASSWORD", "REDIS_PASSWORD", "CHAT_CAGOU_SESSION_SECRET"}
VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def code_vars(path: Path) -> set[str]:
    return {
        v
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
        for v in VAR.findall(line)
    }


def env_of(service: dict) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def mounts(service: dict) -> dict[str, Path]:
    """container path -> host file (resolved from deploy/)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def test_services(compose):
    assert set(compose["services"]) == {
        "rasa1",
        "rasa2",
        "action-server",
        "retention",
        "nginx",
        "postgres",
        "redis",
    }


def test_retention_service_runs_what_make_run_prod_runs_on_the_same_store(compose):
    """Personal data: the same purge command as deploy/prod.py, on the Rasa services' database,
    and compose refuses to start it without a retention period."""
    local = Topology(Path("/tmp/unused"), {"CHAT_CAGOU_RETENTION_DAYS": "365"}).retention_command()
    service = compose["services"]["retention"]
    assert local is not None and service["command"][1:] == local[1:]
    env = env_of(service)
    rasa_env = env_of(compose["services"]["rasa1"])
    assert all(env[k] == rasa_env[k] for k in rasa_env if k.startswith("DB_"))
    assert env["CONSOLE_ENDPOINTS"] == "/app/deploy/endpoints.prod.yml"
    assert env["CHAT_CAGOU_RETENTION_DAYS"].startswith("${CHAT_CAGOU_RETENTION_DAYS:?")
    assert "COPY console/ console/" in (DEPLOY / "Dockerfile").read_text()


def test_rasa_services_run_what_make_run_prod_runs(compose):
    local = Topology(Path("/tmp/unused"), {"RASA_AUTH_TOKEN": "x"}).rasa_command(0)
    local_options = dict(zip(local[3::2], local[4::2], strict=False))  # after python -m deploy.rasa_run
    for name in ("rasa1", "rasa2"):
        service = compose["services"][name]
        command = service["command"]
        assert command[:3] == ["python", "-m", "deploy.rasa_run"]
        options = dict(zip(command[3::2], command[4::2], strict=False))
        assert set(options) == set(local_options)
        assert options["--model"] == DEFAULTS["CHAT_CAGOU_MODEL"]
        assert options["--endpoints"] == str(ENDPOINTS.relative_to(ROOT))
        assert options["--credentials"] == "credentials.yml"
        files = mounts(service)
        assert files["/app/deploy/endpoints.prod.yml"] == ENDPOINTS
        assert files["/app/credentials.yml"] == ROOT / "credentials.yml"
        assert "--auth-token" not in command and "--enable-api" not in command  # rasa_run adds them


def test_endpoints_variables_are_set_for_every_rasa_service(compose):
    needed = code_vars(ENDPOINTS)
    assert needed >= {"DB_HOST", "DB_PASSWORD", "REDIS_HOST", "REDIS_KEY_PREFIX", "ACTION_SERVER_URL"}
    local = settings({"RASA_AUTH_TOKEN": "x"})
    assert needed <= set(local), needed - set(local)  # make run-prod sets them all
    for name in ("rasa1", "rasa2"):
        env = env_of(compose["services"][name])
        assert needed <= set(env), needed - set(env)
        assert "RASA_AUTH_TOKEN" in env


def test_secrets_have_no_default_in_compose(compose):
    text = COMPOSE_FILE.read_text()
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses and all(u.startswith(":?") for u in uses), (secret, uses)
    for name in ("FB_VERIFY", "FB_SECRET", "FB_PAGE_ACCESS_TOKEN"):
        assert re.findall(r"\$\{" + name + r"([^}]*)\}", text) == [
            ":-"
        ]  # from the environment, empty if unset
    assert "RASA_AUTH_TOKEN" not in DEFAULTS and "DB_PASSWORD" in DEFAULTS and DEFAULTS["DB_PASSWORD"] == ""


def test_nginx_uses_the_same_template_with_every_variable_set(compose):
    service = compose["services"]["nginx"]
    files = mounts(service)
    assert files == {"/etc/nginx/templates/default.conf.template": NGINX_TEMPLATE}
    env = env_of(service)
    needed = code_vars(NGINX_TEMPLATE)
    assert needed <= set(env), needed - set(env)
    assert needed <= set(settings({"RASA_AUTH_TOKEN": "x"}))
    # upstream ports are the ports the services listen on
    rasa_port = compose["services"]["rasa1"]["command"][
        compose["services"]["rasa1"]["command"].index("--port") + 1
    ]
    assert (
        f"rasa1:{rasa_port}" in env["RASA_UPSTREAM_SERVERS"]
        and f"rasa2:{rasa_port}" in env["RASA_UPSTREAM_SERVERS"]
    )
    action_port = compose["services"]["action-server"]["command"][-1]
    assert f"action-server:{action_port}" in env["ACTION_UPSTREAM_SERVERS"]
    action_url = env_of(compose["services"]["rasa1"])["ACTION_SERVER_URL"]
    assert action_url == f"http://nginx:{env['ACTION_LB_LISTEN']}/webhook"
    assert compose["services"]["nginx"]["ports"] == ["${NGINX_PUBLIC_PORT:-8000}:" + env["NGINX_LISTEN"]]


def test_dockerfile_ships_what_the_services_import():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for path in (
        "actions/",
        "channels/",
        "deploy/",
        "fiche/",
        "credentials.yml",
        "domain.yml",
        "models/chat-cagou.tar.gz",
        "requirements.lock",
    ):
        assert f"COPY {path}" in dockerfile or f" {path}" in dockerfile, path
    assert "USER chatcagou" in dockerfile  # not root


# --- the image's build context (.dockerignore) and its packages -----------------------------


def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, regex) for each pattern, as Docker's patternmatcher reads them: `*` and `?`
    stay within a path segment, `**` spans segments, a leading `!` lets a path back in."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((excludes, re.compile(regex + "$")))
    return patterns


def in_build_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether `path` (relative, '/'-separated) is sent to the Docker engine: the last pattern
    matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = excludes
    return not excluded


DOCKERIGNORE = dockerignore_patterns((ROOT / ".dockerignore").read_text())


@pytest.mark.parametrize(
    "path",
    [
        "deploy/prod.env",
        ".env",
        "actions/.env",
        "deploy/.env.production",
        "tracker.db",
        "messenger_mids.db",
        "logs/rasa.log",
        "actions/debug.log",
        ".venv/bin/python",
        "tests/test_fiche.py",
        "harness/servers.py",
        "bench/results.md",
        "deploy/prod.py",
        "deploy/nginx/chat-cagou.conf.template",
        "actions/__pycache__/answers.cpython-311.pyc",
        "models/other-model.tar.gz",
        "requirements-dev.lock",
    ],
)
def test_secrets_and_local_state_never_enter_the_build_context(path):
    assert not in_build_context(path, DOCKERIGNORE), path


def test_what_the_image_copies_is_in_the_build_context():
    copied = [
        src
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
    ]
    assert copied
    for src in copied:
        files = [p for p in (ROOT / src).rglob("*") if p.is_file()] if (ROOT / src).is_dir() else [ROOT / src]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative and (file.exists() or src.startswith("models/")):
                assert in_build_context(relative, DOCKERIGNORE), relative


def test_no_file_of_this_checkout_that_holds_secrets_or_state_would_enter_the_image():
    """Whatever lies in the checkout now (an env file beside the example, a database, logs):
    none of it is sent to the Docker engine."""
    risky = re.compile(r"(^|/)(\.env[^/]*|[^/]*\.env|[^/]*\.db|[^/]*\.sqlite3?|[^/]*\.log)$")
    leaks = [
        relative
        for file in ROOT.rglob("*")
        if file.is_file()
        and ".venv" not in file.parts
        and "node_modules" not in file.parts
        and risky.search(relative := file.relative_to(ROOT).as_posix())
        and in_build_context(relative, DOCKERIGNORE)
    ]
    assert not leaks, leaks


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "requirements-dev.lock" not in dockerfile
    runtime = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    dev_tools = {"pytest", "pytest-timeout", "playwright", "ruff", "mypy", "types-requests"}
    assert not runtime & dev_tools, runtime & dev_tools
    dev = (ROOT / "requirements-dev.lock").read_text()
    assert all(f"{tool}==" in dev.lower().replace("_", "-") for tool in dev_tools)


def test_env_example_names_every_variable_and_only_placeholders_for_secrets():
    example = {}
    for line in (DEPLOY / "prod.env.example").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            example[key] = value
    used = code_vars(ENDPOINTS) | code_vars(NGINX_TEMPLATE) | SECRETS
    derived = {
        "ACTION_SERVER_URL",
        "RASA_UPSTREAM_SERVERS",
        "ACTION_UPSTREAM_SERVERS",
        "NGINX_LISTEN",
        "ACTION_LB_LISTEN",
        "NGINX_REAL_IP_DIRECTIVES",  # from NGINX_REAL_IP_FROM
    }
    assert used - derived <= set(example), (used - derived) - set(example)
    for secret in SECRETS | {"FB_VERIFY", "FB_SECRET", "FB_PAGE_ACCESS_TOKEN"}:
        assert example[secret] == "CHANGE_ME"
    docs = (ROOT / "docs" / "production.md").read_text()
    undocumented = [k for k in example if f"`{k}`" not in docs]
    assert not undocumented, undocumented


@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed"
)
def test_nginx_template_is_valid_nginx_configuration(tmp_path):
    topology = Topology(tmp_path, {"RASA_AUTH_TOKEN": "x", "NGINX_PORT": "18000", "ACTION_LB_PORT": "18001"})
    conf = topology.nginx_conf()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(KeyError):
        render(NGINX_TEMPLATE.read_text(), {})


def compose_cli():
    return shutil.which("docker-compose")


@pytest.mark.skipif(not compose_cli(), reason="docker-compose (Debian package) not installed")
def test_docker_compose_config_is_valid_and_requires_the_secrets():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    command = [compose_cli(), "-f", str(COMPOSE_FILE), "config"]
    missing = subprocess.run(command + ["-q"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "RASA_AUTH_TOKEN" in missing.stderr + missing.stdout
    secrets = {
        "RASA_AUTH_TOKEN": "t" * 40,
        "DB_PASSWORD": "p-4f0c9d2a",
        "REDIS_PASSWORD": "r-8b7e6f5a",
        "CHAT_CAGOU_SESSION_SECRET": "s" * 40,
    }
    result = subprocess.run(command, env={**env, **secrets}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["services"]["rasa2"]["environment"]["DB_PASSWORD"] == "p-4f0c9d2a"
    assert resolved["services"]["nginx"]["environment"]["NGINX_RATE_PER_IP"] == DEFAULTS["NGINX_RATE_PER_IP"]
