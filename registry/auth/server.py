"""OAuth2 client-credentials over authlib, adapted to FastAPI (authlib ships no such adapter)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from registry.auth import scopes as sc
from registry.auth.repository import ClientRepository
from registry.auth.service import secret_matches
from registry.errors import BadRequest, UnsupportedMediaType
from registry.models import OAuthClient, Tenant

_session: ContextVar[Session] = ContextVar("token_server_session")

FORM_TYPE = "application/x-www-form-urlencoded"


def parse_token_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The token request's parameters. Only a urlencoded body is read (RFC 6749 section 3.2):
    anything else is a 415 before a byte of it is parsed, so no multipart part is ever spooled."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime != FORM_TYPE:
        raise UnsupportedMediaType(
            f"send the token request as {FORM_TYPE} (got {mime or 'no Content-Type'})"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("the token request body is not valid UTF-8") from exc
    return dict(parse_qsl(text, keep_blank_values=True))


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthClient, tenant: Tenant | None) -> None:
        self.row, self.tenant = row, tenant

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = sc.parse(self.row.scopes)
        return sc.render(allowed if not scope else sc.parse(scope) & allowed)

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _Grant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        out: defaultdict[str, list[str]] = defaultdict(list)
        for k, v in self._form.items():
            out[k].append(v)
        return out


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]):
        super().__init__(method=method, uri=uri, headers=headers)
        self._form = form
        self.payload = _Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, keys: KeySet, issuer: str, audience: str, ttl: int) -> None:
        super().__init__(issuer=issuer, alg="RS256", expires_generator=lambda *_: ttl)
        self._keys, self._audience = keys, audience

    def get_jwks(self) -> KeySet:
        return self._keys

    def get_audiences(self, client: _Client, user: Any, scope: str) -> str:
        return self._audience

    def get_extra_claims(self, client: _Client, grant_type: str, user: Any, scope: str) -> dict:
        claims: dict[str, Any] = {"role": client.row.role}
        if client.tenant is not None:
            claims["tenant_id"] = str(client.tenant.id)
            claims["tenant"] = client.tenant.slug
        return claims


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    """One instance per app; the DB session is per request and passed in explicitly."""

    def __init__(self, keys: KeySet, *, issuer: str, audience: str, ttl: int) -> None:
        super().__init__(scopes_supported=sorted(sc.ALL_SCOPES))
        self.register_grant(_Grant)
        self.register_token_generator(
            "client_credentials", _TokenGenerator(keys, issuer, audience, ttl)
        )

    def query_client(self, client_id: str) -> _Client | None:
        found = ClientRepository(_session.get()).get_active(client_id)
        if found is None:
            return None
        row, tenant = found
        if tenant is not None and tenant.disabled:
            return None  # a disabled tenant's clients cannot get tokens
        return _Client(row, tenant)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """JWTs are self-contained: nothing to store."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers)

    def issue(
        self, session: Session, *, uri: str, headers: Mapping[str, str], form: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        token = _session.set(session)
        try:
            result: tuple[int, Any, dict[str, str]] = self.create_token_response(
                _Request("POST", uri, headers, form)
            )
            return result
        finally:
            _session.reset(token)
