"""docker-compose.yml against the Compose Specification's JSON schema, as written and once
interpolated with .env.example; the variables it refuses to start without; its two profiles."""

from __future__ import annotations

import copy

import pytest

from tests.support.compose import (
    MissingVariable,
    enabled_services,
    interpolate,
    interpolated,
    load_compose,
    read_env_file,
    schema_errors,
)

# What `docker compose up` refuses to start without: secrets and the identity provider.
REQUIRED = {
    "ADMIN_API_KEY", "GRAFANA_ADMIN_PASSWORD", "OIDC_ISSUER_URL", "OIDC_CLIENT_SECRET",
    "CONSOLE_COOKIE_SECRET", "GRAFANA_OAUTH_CLIENT_SECRET", "GRAFANA_OAUTH_AUTH_URL",
    "GRAFANA_OAUTH_TOKEN_URL", "GRAFANA_OAUTH_API_URL",
}


def filled_env() -> dict[str, str]:
    """.env.example with the one value it leaves for each installation to make."""
    return {**read_env_file(), "CONSOLE_COOKIE_SECRET": "a-long-random-value-made-for-this-test"}


def test_the_compose_file_as_written_follows_the_compose_specification():
    assert schema_errors(load_compose()) == []


def test_the_compose_file_interpolated_with_env_example_follows_the_compose_specification():
    assert schema_errors(interpolated(load_compose(), filled_env())) == []


def test_the_schema_check_finds_a_misspelt_key_and_a_port_of_the_wrong_shape():
    document = copy.deepcopy(load_compose())
    document["services"]["engine"]["healthcheck"]["intervall"] = "5s"
    document["services"]["console"]["ports"] = [{"published": ["8501"]}]
    errors = "\n".join(schema_errors(document))
    assert "services/engine/healthcheck" in errors and "intervall" in errors
    assert "services/console/ports/0" in errors


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_refuses_to_start_without(name: str):
    for missing in ({k: v for k, v in filled_env().items() if k != name},
                    {**filled_env(), name: ""}):
        with pytest.raises(MissingVariable) as refused:
            interpolated(load_compose(), missing)
        assert refused.value.name == name


def test_every_variable_compose_requires_is_known_here():
    """A new `${VAR:?...}` in docker-compose.yml belongs in REQUIRED and in the docs."""
    document = load_compose()
    required: set[str] = set()
    env = filled_env()
    for name in env:
        try:
            interpolated(document, {k: v for k, v in env.items() if k != name})
        except MissingVariable as refused:
            required.add(refused.name)
    assert required == REQUIRED


def test_env_example_as_copied_still_needs_a_cookie_secret():
    """No shared cookie secret ships: whoever knew it could forge a console sign-in."""
    assert read_env_file()["CONSOLE_COOKIE_SECRET"] == ""
    with pytest.raises(MissingVariable) as refused:
        interpolated(load_compose(), read_env_file())
    assert refused.value.name == "CONSOLE_COOKIE_SECRET"


def test_the_dev_profile_adds_the_sign_in_provider_and_nothing_else():
    document = load_compose()
    assert enabled_services(document, ["dev"]) - enabled_services(document) == {"oidc"}
    # Nothing in the plain stack may wait for a dev-only service: compose would refuse to start.
    plain = enabled_services(document)
    for name in plain:
        assert set(document["services"][name].get("depends_on") or {}) <= plain, name


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A:-x}", {}, "x"),
    ("${A:-x}", {"A": ""}, "x"),
    ("${A-x}", {"A": ""}, ""),
    ("${A:-${B:-y}}", {}, "y"),
    ("${A:+set}", {"A": "1"}, "set"),
    ("${A:+set}", {"A": ""}, ""),
    ("$$A and $A", {"A": "1"}, "$A and 1"),
    ("${A:?needed}", {"A": "v"}, "v"),
])
def test_interpolation_follows_the_compose_rules(text: str, env: dict[str, str], expected: str):
    assert interpolate(text, env) == expected


def test_interpolation_stops_on_a_required_variable_with_its_message():
    with pytest.raises(MissingVariable, match="set it in .env"):
        interpolate("${A:?set it in .env}", {"A": ""})
    assert interpolate("${A?only when unset}", {"A": ""}) == ""
