"""`python -m dashboard [--host H] [--port P]`: serve the console.

Streamlit reads sign-in settings (`st.login`) only from a secrets file, so this writes the
`[auth]` section from the environment (`dashboard.settings`) into a file only this user may read,
in a fresh private folder, and runs `streamlit run dashboard/app.py` on it (through
`dashboard.server`, which first starts the console's metrics endpoint in the same process).
Nothing else is ever written there; the file holds the client secret and the cookie secret, and
is never logged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from billing_core.settings import SettingsError
from dashboard.settings import ConsoleSettings

APP = Path(__file__).resolve().parent / "app.py"


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string once non-ASCII is left as is (TOML has no
    # surrogate-pair escapes).
    return json.dumps(value, ensure_ascii=False)


def auth_secrets(settings: ConsoleSettings) -> str:
    """The `[auth]` table `st.login` reads: the provider's discovery document, the console's
    client, where the provider sends people back, the cookie secret, and the ID token exposed to
    the app (the console forwards it to the APIs as the person's credential)."""
    assert settings.oidc is not None
    values = {
        "redirect_uri": settings.redirect_uri,
        "cookie_secret": settings.cookie_secret,
        "client_id": settings.oidc.audience,
        "client_secret": settings.client_secret,
        "server_metadata_url": f"{settings.oidc.issuer}/.well-known/openid-configuration",
    }
    lines = ["[auth]", *(f"{k} = {_toml_string(v)}" for k, v in values.items()),
             'expose_tokens = ["id"]']
    return "\n".join(lines) + "\n"


def write_secrets(settings: ConsoleSettings) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="console-secrets-"))  # mode 0700
    path = folder / "secrets.toml"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(auth_secrets(settings))
    return path


def streamlit_argv(*, host: str, port: int, secrets_file: Path | None) -> list[str]:
    # dashboard.server starts the console's metrics endpoint, then runs Streamlit's own CLI.
    argv = [sys.executable, "-m", "dashboard.server", "run", str(APP),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]
    if secrets_file is not None:
        argv += ["--secrets.files", str(secrets_file)]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8501))
    args = parser.parse_args(argv)
    try:
        settings = ConsoleSettings.for_serving()
    except SettingsError as error:
        print(f"console: {error}", file=sys.stderr)
        return 2
    secrets_file = None
    if settings.oidc is not None:
        secrets_file = write_secrets(settings)
        # The app reads its settings from the environment; a cookie secret made up for this
        # run (development only) must be the one the secrets file holds.
        os.environ["CONSOLE_COOKIE_SECRET"] = settings.cookie_secret
    else:
        print("console: OIDC_ISSUER_URL is unset, so nobody can sign in; the console serves "
              "only a page saying what to set", file=sys.stderr)
    command = streamlit_argv(host=args.host, port=args.port, secrets_file=secrets_file)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
