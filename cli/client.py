"""The CLI's HTTP client: the registry's API only, so it works against any deployment.

`loraplex login` stores the URL and client credentials in `<config>/credentials.json` (mode
0600; `LORAPLEX_CLI_CONFIG` or `~/.config/loraplex`). Client credentials have no refresh token:
a cached access token is reused until a minute before it expires, then a new one is requested
with the stored secret.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import typer

REFRESH_MARGIN = 60


def config_dir() -> Path:
    configured = os.environ.get("LORAPLEX_CLI_CONFIG")
    return Path(configured) if configured else Path.home() / ".config" / "loraplex"


class ApiError(typer.Exit):
    """An API error shown as the server's message, then exit 1."""

    def __init__(self, resp: httpx.Response) -> None:
        try:
            body = resp.json()
            detail = body.get("detail") or body
            extra = body.get("problems") or body.get("report")
        except ValueError:
            detail, extra = resp.text, None
        typer.secho(f"error {resp.status_code}: {detail}", err=True, fg="red")
        if extra:
            typer.echo(json.dumps(extra, indent=2, default=str), err=True)
        super().__init__(1)


class Api:
    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.http = httpx.Client(base_url=profile["url"], timeout=120, trust_env=False)

    @classmethod
    def login(cls, url: str, client_id: str, client_secret: str, tenant: str | None) -> Api:
        api = cls({"url": url.rstrip("/"), "client_id": client_id, "client_secret": client_secret})
        api._fetch_token()
        if tenant is None:  # a tenant client sees only its own tenant
            items = api.get("/v1/tenants")["items"]
            if api.profile["role"] == "tenant" and len(items) == 1:
                tenant = items[0]["slug"]
        api.profile["tenant"] = tenant
        api.save()
        return api

    @classmethod
    def load(cls) -> Api:
        path = config_dir() / "credentials.json"
        if not path.exists():
            typer.secho("not logged in: run `loraplex login --url ... --client-id ...`", err=True)
            raise typer.Exit(1)
        return cls(json.loads(path.read_text()))

    def save(self) -> None:
        path = config_dir() / "credentials.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.profile, f, indent=2)

    def tenant(self, given: str | None) -> str:
        slug = given or self.profile.get("tenant")
        if not slug:
            typer.secho("say which tenant: --tenant SLUG", err=True)
            raise typer.Exit(2)
        return str(slug)

    def _fetch_token(self) -> None:
        resp = self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.profile["client_id"], self.profile["client_secret"]),
        )
        if resp.status_code != 200:
            raise ApiError(resp)
        body = resp.json()
        self.profile["token"] = body["access_token"]
        self.profile["expires_at"] = time.time() + int(body.get("expires_in", 300))
        self.profile["role"] = _claim(body["access_token"], "role")

    def _headers(self) -> dict[str, str]:
        if time.time() > float(self.profile.get("expires_at", 0)) - REFRESH_MARGIN:
            self._fetch_token()
            self.save()
        return {"Authorization": f"Bearer {self.profile['token']}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.http.request(method, path, headers=self._headers(), **kwargs)
        if resp.status_code >= 400:
            raise ApiError(resp)
        if not resp.content:
            return None
        return resp.json() if "json" in resp.headers.get("content-type", "") else resp.content

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _claim(token: str, name: str) -> Any:
    import base64

    payload = token.split(".")[1]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data.get(name)
