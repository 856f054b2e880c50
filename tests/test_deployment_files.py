"""docker-compose.yml, Dockerfile and .env.example, checked by reading them (no Docker here)."""

from __future__ import annotations

import json
import re
import runpy
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jmespath
import pytest
import yaml

from billing_core.access.oidc import DEFAULT_ROLE_MAP, parse_role_map, role_from_claims
from billing_core.access.rules import Role
from devstack.processes import demo_user_claims
from devstack.stack import CONSOLE_CLIENT_ID
from tests.support.compose import enabled_services, interpolated, read_env_file

ROOT = Path(__file__).resolve().parent.parent
DESIGN_SETTINGS = (
    "DATABASE_URL REDIS_URL ADMIN_API_KEY PORT STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET "
    "STRIPE_API_BASE PROMETHEUS_URL ENGINE_URL ALERTS_URL SMTP_HOST SMTP_PORT SMTP_USERNAME "
    "SMTP_PASSWORD SMTP_FROM ONCALL_EMAIL SLACK_WEBHOOK_URL RUNBOOK_BASE_URL CONSOLE_URL "
    "GRAFANA_URL EVALUATION_INTERVAL_SECONDS OIDC_ISSUER_URL OIDC_CLIENT_ID OIDC_CLIENT_SECRET "
    "OIDC_ROLE_CLAIM"
).split()
ALLOWED_SERVICE_KEYS = {
    "image", "build", "command", "environment", "ports", "volumes", "depends_on",
    "healthcheck", "restart", "entrypoint", "profiles", "networks",
}
# The services that sign people in, or take their tokens, through the one provider.
SIGNED_IN = ("engine", "alerts", "console")
GRAFANA_ROLE = {Role.admin: "Admin", Role.operator: "Editor", Role.support: "Viewer",
                Role.viewer: "Viewer"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_well_formed():
    doc = compose()
    services = doc["services"]
    assert {"postgres", "redis", "engine", "console", "prometheus", "grafana", "alerts",
            "mailcatcher"} <= set(services)
    for name, service in services.items():
        unknown = set(service) - ALLOWED_SERVICE_KEYS
        assert not unknown, f"{name}: unexpected keys {unknown}"
        assert "image" in service or "build" in service, name
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        for dep, condition in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert condition["condition"] in {"service_healthy", "service_started"}
        # Published on 127.0.0.1 unless BIND_ADDRESS says otherwise; a dev-only service (the
        # sign-in provider that lets anyone in as admin) on 127.0.0.1 whatever BIND_ADDRESS says.
        address = (r"127\.0\.0\.1" if service.get("profiles")
                   else r"\$\{BIND_ADDRESS:-127\.0\.0\.1\}")
        for port in service.get("ports", []):
            assert re.fullmatch(rf"{address}:\d+:\d+", port), f"{name}: {port}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            elif source.startswith("/"):
                # A host path: only the log shipper's Docker socket, read-only.
                assert (name, volume) == ("alloy", "/var/run/docker.sock:/var/run/docker.sock:ro")
            else:
                assert source in doc["volumes"], f"{name} uses undeclared volume {source}"


def test_engine_waits_for_healthy_postgres_and_redis_and_migrates_on_start():
    engine = compose()["services"]["engine"]
    assert engine["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert engine["depends_on"]["redis"]["condition"] == "service_healthy"
    assert engine["command"][:4] == ["python", "-m", "billing_engine", "serve"]
    assert "--no-migrate" not in engine["command"]  # serve applies migrations first
    assert engine["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert engine["environment"]["APP_ENV"] == "production"
    assert ":?" in engine["environment"]["ADMIN_API_KEY"]  # refuses to start without a key


def test_every_variable_compose_reads_is_documented_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - documented == set()
    assert set(DESIGN_SETTINGS) - documented == set()


def test_dockerfile_runs_the_engine_as_an_unprivileged_user_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert re.search(r"^USER app$", text, re.M)
    assert "HEALTHCHECK" in text and "/ready" in text
    assert 'CMD ["python", "-m", "billing_engine", "serve"' in text


def test_prometheus_in_compose_scrapes_the_compose_hostnames():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.docker.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["billing-engine"] == ["engine:8006"]


def test_prometheus_keeps_more_than_the_30_day_slo_window():
    command = compose()["services"]["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=35d" in command
    make_run = runpy.run_path(str(ROOT / "scripts" / "run_local.py"))["build_stack"]()
    make_run.build()
    assert "--storage.tsdb.retention.time=35d" in make_run.prometheus.argv()


def test_console_runs_the_dashboard_package_shipped_in_the_image():
    console = compose()["services"]["console"]
    assert console["command"] == ["python", "-m", "dashboard", "--host", "0.0.0.0",
                                  "--port", "8501"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY dashboard ./dashboard" in dockerfile and "COPY runbooks ./runbooks" in dockerfile
    assert (ROOT / "dashboard" / "__main__.py").exists()  # what `python -m dashboard` runs


def test_alerts_process_shares_the_database_and_mails_the_catcher():
    services = compose()["services"]
    alerts = services["alerts"]
    assert alerts["command"][:4] == ["python", "-m", "alerts", "serve"]
    engine_db = services["engine"]["environment"]["DATABASE_URL"]
    assert alerts["environment"]["DATABASE_URL"] == engine_db
    assert alerts["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert alerts["environment"]["SMTP_HOST"].endswith(":-mailcatcher}")
    assert alerts["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert ":?" in alerts["environment"]["ADMIN_API_KEY"]
    assert "8007" in alerts["healthcheck"]["test"][-1]
    # The console and Prometheus reach it by its service name.
    assert services["console"]["environment"]["ALERTS_URL"] == "http://alerts:8007"
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.docker.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert "alerts:8007" in targets


def test_the_image_holds_every_package_the_processes_import():
    """Each package the three processes run from is copied into the image (the test harness,
    devstack, is not: it is for this repository's tests, bench and make run)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("billing_core", "billing_engine", "alerts", "dashboard"):
        assert f"COPY {package} ./{package}" in dockerfile, package
    for process in ("billing_engine", "alerts", "dashboard"):
        imported = set()
        for path in (ROOT / process).rglob("*.py"):
            imported |= set(re.findall(r"^(?:from|import) (\w+)", path.read_text(), re.M))
        ours = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
        assert imported & ours <= {"billing_core", "billing_engine", "alerts", "dashboard"}, process


def test_the_console_holds_no_key_and_needs_a_cookie_secret():
    console = compose()["services"]["console"]["environment"]
    assert not any("API_KEY" in name or "API_KEY" in str(value)
                   for name, value in console.items())
    assert console["CONSOLE_COOKIE_SECRET"].startswith("${CONSOLE_COOKIE_SECRET:?")
    assert console["OIDC_CLIENT_SECRET"].startswith("${OIDC_CLIENT_SECRET:?")
    # The browser-facing address, the one the provider sends people back to.
    env = {**read_env_file(), "CONSOLE_COOKIE_SECRET": "x" * 40}
    services = interpolated(compose(), env)["services"]
    assert services["console"]["environment"]["CONSOLE_URL"] == env["CONSOLE_URL"]
    assert services["alerts"]["environment"]["CONSOLE_URL"] == env["CONSOLE_URL"]


def test_engine_alerts_and_console_name_the_same_issuer_client_and_roles():
    raw = compose()["services"]
    for name in ("OIDC_ISSUER_URL", "OIDC_CLIENT_ID", "OIDC_ROLE_CLAIM", "OIDC_ROLE_MAP"):
        assert len({raw[s]["environment"][name] for s in SIGNED_IN}) == 1, name
    assert raw["engine"]["environment"]["OIDC_ISSUER_URL"].startswith("${OIDC_ISSUER_URL:?")
    # Without .env values: the client is the console's, and the roles are the shipped defaults.
    env = {**{k: v for k, v in read_env_file().items() if not k.startswith("OIDC_ROLE")},
           "OIDC_CLIENT_ID": "", "CONSOLE_COOKIE_SECRET": "x" * 40}
    engine = interpolated(compose(), env)["services"]["engine"]["environment"]
    assert engine["OIDC_CLIENT_ID"] == CONSOLE_CLIENT_ID
    assert engine["OIDC_ROLE_CLAIM"] == "groups"
    assert parse_role_map(engine["OIDC_ROLE_MAP"]) == DEFAULT_ROLE_MAP


def test_the_dev_sign_in_provider_is_in_the_dev_profile_only():
    services = compose()["services"]
    assert services["oidc"]["profiles"] == ["dev"]
    assert [name for name, s in services.items() if s.get("profiles")] == ["oidc"]
    assert "oidc" not in enabled_services(compose())


def test_the_dev_provider_signs_in_the_demo_people_of_make_run():
    command = compose()["services"]["oidc"]["command"]
    assert command[:3] == ["python", "-m", "oidc_provider_mock"]
    people = [json.loads(command[i + 1]) for i, arg in enumerate(command)
              if arg == "--user-claims"]
    assert people == demo_user_claims()


def test_the_dev_provider_runs_from_its_own_image_with_the_test_extra():
    """oidc-provider-mock is a test dependency: the dev image installs that extra, under a tag of
    its own, so the production image (billing-ops:latest) never carries it."""
    services = compose()["services"]
    oidc = services["oidc"]
    assert oidc["image"] != services["engine"]["image"]
    extra = oidc["build"]["args"]["INSTALL_EXTRAS"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("oidc-provider-mock")
               for dep in extras["optional-dependencies"][extra])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ARG INSTALL_EXTRAS=""$', dockerfile, re.M)
    assert 'pip install ".${INSTALL_EXTRAS:+[$INSTALL_EXTRAS]}"' in dockerfile


def test_browsers_and_containers_reach_the_dev_provider_at_one_address():
    """The provider takes its issuer from each request's Host header, so the browser (through
    the published port) and the containers (through the network alias) must use one host and
    port: a *.localhost name, which browsers resolve to the loopback themselves."""
    env = read_env_file()
    issuer = urlsplit(env["OIDC_ISSUER_URL"])
    assert issuer.hostname is not None and issuer.hostname.endswith(".localhost")
    oidc = compose()["services"]["oidc"]
    assert issuer.hostname in oidc["networks"]["default"]["aliases"]
    listens = oidc["command"][oidc["command"].index("--port") + 1]
    assert oidc["ports"] == [f"127.0.0.1:{issuer.port}:{issuer.port}"]
    assert listens == str(issuer.port)
    for name in ("GRAFANA_OAUTH_AUTH_URL", "GRAFANA_OAUTH_TOKEN_URL", "GRAFANA_OAUTH_API_URL"):
        assert env[name].startswith(env["OIDC_ISSUER_URL"] + "/"), name


def test_grafana_has_no_anonymous_viewers_and_no_default_password():
    grafana = compose()["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    # Break-glass: the admin password still signs in beside the provider.
    assert grafana["GF_AUTH_DISABLE_LOGIN_FORM"] == "false"


def test_grafana_signs_people_in_through_the_provider():
    grafana = compose()["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_GENERIC_OAUTH_ENABLED"] == "true"
    assert set(grafana["GF_AUTH_GENERIC_OAUTH_SCOPES"].split()) >= {"openid", "email", "profile"}
    assert grafana["GF_AUTH_GENERIC_OAUTH_USE_PKCE"] == "true"
    assert grafana["GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_STRICT"] == "true"
    assert grafana["GF_SERVER_ROOT_URL"].startswith("${GRAFANA_URL:-")
    # Only people in one of the groups the APIs know are let in at all.
    assert set(grafana["GF_AUTH_GENERIC_OAUTH_ALLOWED_GROUPS"].split()) == set(DEFAULT_ROLE_MAP)
    assert grafana["GF_AUTH_GENERIC_OAUTH_GROUPS_ATTRIBUTE_PATH"] == "groups"


@pytest.mark.parametrize("group", sorted(DEFAULT_ROLE_MAP))
def test_grafana_maps_each_billing_group_to_the_role_it_gives_in_the_apis(group: str):
    expression = compose()["services"]["grafana"]["environment"][
        "GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"]
    claims = {"sub": "someone", "groups": [group]}
    role = role_from_claims(claims)
    assert role is not None
    assert jmespath.search(expression, claims) == GRAFANA_ROLE[role]
    # Several groups: the highest wins, as in the APIs.
    everything = {"groups": sorted(DEFAULT_ROLE_MAP)}
    assert jmespath.search(expression, everything) == "Admin"


def test_grafana_role_mapping_survives_a_person_without_groups():
    """No groups claim at all must not make the expression fail; allowed_groups turns such a
    person away before the role matters."""
    expression = compose()["services"]["grafana"]["environment"][
        "GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"]
    assert jmespath.search(expression, {"sub": "someone"}) == "Viewer"
    assert jmespath.search(expression, {"groups": []}) == "Viewer"
