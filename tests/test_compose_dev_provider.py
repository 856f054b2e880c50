"""The compose dev profile's sign-in provider, run from its compose command line, reached the way
the containers and the browser reach it, and signed in to as the console and Grafana do.

Docker is not needed for what matters here. Inside compose the containers find the provider by
its network alias `oidc.localhost` and the browser by the published port on the loopback; both
send `Host: oidc.localhost:9400`, from which the provider names its issuer. The test does the
same: name resolution maps oidc.localhost:9400 to the provider's real port on 127.0.0.1 (what
the alias and the port mapping do) and every request keeps the name in its Host header.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jmespath
import pytest

from billing_core.access.oidc import DEFAULT_ROLE_MAP, OidcConfig, OidcVerifier
from billing_core.access.rules import Role
from devstack.processes import DEMO_USERS, issue_id_token
from devstack.servers import free_port, wait_for
from tests.support.compose import interpolated, load_compose, read_env_file

pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_compose_dev_provider")]

GRAFANA_ROLE = {"billing-admin": "Admin", "billing-operator": "Editor",
                "billing-support": "Viewer", "billing-viewer": "Viewer"}


def compose_services() -> dict[str, Any]:
    env = {**read_env_file(), "CONSOLE_COOKIE_SECRET": secrets.token_urlsafe(32)}
    return dict(interpolated(load_compose(), env)["services"])


@contextlib.contextmanager
def resolved_as_in_compose(name: str, port: int, real_port: int) -> Iterator[None]:
    """getaddrinfo answers name:port with 127.0.0.1:real_port, as the compose network alias and
    the published port do; everything else resolves as usual."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name and str(service) == str(port):
            return original("127.0.0.1", real_port, *args, **kwargs)
        return original(host, service, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = original


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return compose_services()


@dataclass(frozen=True)
class Provider:
    issuer: str  # .env.example's OIDC_ISSUER_URL, reaching the provider as in compose
    direct_url: str  # the same provider by another name: what a plain service name would be


@pytest.fixture(scope="module")
def provider_process(services: dict[str, Any]) -> Iterator[Provider]:
    """The oidc service's own command line on a free port of this machine."""
    command = list(services["oidc"]["command"])
    assert command[0] == "python"
    real_port = free_port()
    command[0] = sys.executable
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(real_port)
    issuer = services["engine"]["environment"]["OIDC_ISSUER_URL"]
    address = urlsplit(issuer)
    assert address.hostname and address.port
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with resolved_as_in_compose(address.hostname, address.port, real_port):
            wait_for(lambda: _answers(f"{issuer}/.well-known/openid-configuration", process),
                     timeout=30, what="the dev profile's OIDC provider")
            yield Provider(issuer=issuer, direct_url=f"http://127.0.0.1:{real_port}")
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def provider(provider_process: Provider) -> str:
    return provider_process.issuer


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the provider exited ({process.returncode})")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_provider_names_one_issuer_for_browsers_and_containers(provider: str,
                                                                      services: dict[str, Any]):
    discovery = httpx.get(f"{provider}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == provider
    # The console sends the browser to this address, the same host and port it used itself.
    assert discovery["authorization_endpoint"].startswith(provider + "/")
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_GENERIC_OAUTH_AUTH_URL"] == discovery["authorization_endpoint"]
    assert grafana["GF_AUTH_GENERIC_OAUTH_TOKEN_URL"] == discovery["token_endpoint"]
    assert grafana["GF_AUTH_GENERIC_OAUTH_API_URL"] == discovery["userinfo_endpoint"]


def test_a_provider_reached_by_another_name_issues_tokens_the_apis_refuse(
        provider_process: Provider, services: dict[str, Any]):
    """Why one name: had the console reached the provider as `oidc:9400`, the tokens would
    name that issuer, and the APIs, configured with the browser's address, refuse them."""
    direct = provider_process.direct_url
    discovery = httpx.get(f"{direct}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == direct != provider_process.issuer
    token = issue_id_token(direct, "admin@example.com",
                           client_id=services["console"]["environment"]["OIDC_CLIENT_ID"])
    config = OidcConfig.from_env(services["engine"]["environment"])
    assert config is not None
    assert OidcVerifier(config).verify(token).refusal == "token_invalid"


@pytest.mark.parametrize(("sub", "group"), [(sub, group) for sub, _, group in DEMO_USERS])
def test_each_demo_person_signed_in_at_the_console_is_accepted_by_both_apis(
        provider: str, services: dict[str, Any], sub: str, group: str):
    console = services["console"]["environment"]
    token = issue_id_token(provider, sub, client_id=console["OIDC_CLIENT_ID"],
                           redirect_uri=console["CONSOLE_URL"] + "/oauth2callback")
    for api in ("engine", "alerts"):
        config = OidcConfig.from_env(services[api]["environment"])
        assert config is not None
        check = OidcVerifier(config).verify(token)
        assert check.refusal is None, (api, check.refusal)
        assert check.principal is not None
        assert check.principal.role == DEFAULT_ROLE_MAP[group]
        assert check.principal.name == sub


def grafana_sign_in(issuer: str, grafana: dict[str, str], sub: str) -> dict[str, Any]:
    """What Grafana's generic OAuth does: the browser posts the provider's login form (as `sub`)
    with a PKCE challenge; Grafana exchanges the code with its client secret and the verifier,
    then reads the ID token's claims and the userinfo endpoint."""
    root = grafana["GF_SERVER_ROOT_URL"].rstrip("/")
    redirect_uri = f"{root}/login/generic_oauth"
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    client_id = grafana["GF_AUTH_GENERIC_OAUTH_CLIENT_ID"]
    with httpx.Client(timeout=10) as browser:
        answer = browser.post(grafana["GF_AUTH_GENERIC_OAUTH_AUTH_URL"], params={
            "client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code",
            "scope": grafana["GF_AUTH_GENERIC_OAUTH_SCOPES"], "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256"}, data={"sub": sub})
    assert answer.status_code == 302, answer.text[:500]
    code = httpx.URL(answer.headers["location"]).params["code"]
    with httpx.Client(timeout=10) as grafana_server:
        token = grafana_server.post(
            grafana["GF_AUTH_GENERIC_OAUTH_TOKEN_URL"],
            auth=(client_id, grafana["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"]),
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri, "code_verifier": verifier})
        token.raise_for_status()
        tokens = token.json()
        userinfo = grafana_server.get(
            grafana["GF_AUTH_GENERIC_OAUTH_API_URL"],
            headers={"Authorization": f"Bearer {tokens['access_token']}"})
        userinfo.raise_for_status()
    payload = tokens["id_token"].split(".")[1]
    id_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert id_claims["iss"] == issuer
    return {"id_token": id_claims, "userinfo": userinfo.json()}


def grafana_decision(grafana: dict[str, str], claims: dict[str, Any]) -> str | None:
    """The role Grafana gives, or None when allowed_groups turns the person away."""
    groups = jmespath.search(grafana["GF_AUTH_GENERIC_OAUTH_GROUPS_ATTRIBUTE_PATH"], claims)
    allowed = set(grafana["GF_AUTH_GENERIC_OAUTH_ALLOWED_GROUPS"].split())
    if not allowed & set(groups or []):
        return None
    role = jmespath.search(grafana["GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"], claims)
    assert role in {"Viewer", "Editor", "Admin"}  # role_attribute_strict refuses anything else
    return str(role)


@pytest.mark.parametrize(("sub", "group"), [(sub, group) for sub, _, group in DEMO_USERS])
def test_grafana_gives_each_demo_person_the_role_of_their_group(
        provider: str, services: dict[str, Any], sub: str, group: str):
    grafana = services["grafana"]["environment"]
    signed_in = grafana_sign_in(provider, grafana, sub)
    # Grafana reads the ID token first and the userinfo answer after: both carry the groups.
    for source in ("id_token", "userinfo"):
        assert signed_in[source]["groups"] == [group], source
        assert grafana_decision(grafana, signed_in[source]) == GRAFANA_ROLE[group], source
    assert signed_in["userinfo"]["email"] == sub


def test_grafana_turns_away_someone_typed_into_the_login_page(provider: str,
                                                              services: dict[str, Any]):
    """The provider's login page takes any name; such a person has no groups."""
    grafana = services["grafana"]["environment"]
    signed_in = grafana_sign_in(provider, grafana, "stranger@example.com")
    for source in ("id_token", "userinfo"):
        assert grafana_decision(grafana, signed_in[source]) is None, source
    token = issue_id_token(provider, "stranger@example.com",
                           client_id=services["console"]["environment"]["OIDC_CLIENT_ID"])
    config = OidcConfig.from_env(services["engine"]["environment"])
    assert config is not None
    assert OidcVerifier(config).verify(token).refusal == "token_no_role"


def test_every_role_is_reachable_in_grafana_and_the_apis():
    assert set(DEFAULT_ROLE_MAP.values()) == set(Role)
    assert set(GRAFANA_ROLE) == set(DEFAULT_ROLE_MAP)
