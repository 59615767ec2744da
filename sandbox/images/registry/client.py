"""Every HTTP request to a registry goes through ``Client.request``: auth, retries, errors.

The chain, as containers/image's docker client has it:

- a request goes out with what this client already holds for its scope (a
  bearer token cached per scope, or basic credentials once the registry asked
  for them), else anonymously;
- a 401 answers with a challenge (``WWW-Authenticate``): ``Basic`` is met
  with the next credential of the chain, ``Bearer`` with a token fetched from
  its realm (anonymously, or with a credential), cached for the scope; an
  ``insufficient_scope`` error gets one more token with the scope it names;
- a 429 is retried after its Retry-After (bounded) only when it has no body;
- what is left becomes one ImageError line a user can act on: not found,
  refused (naming the credentials tried, never a secret), unreachable, or
  garbage.

URLs are logged with their query values hidden (upload locations carry
state the registry signed); credentials never reach a log or a message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from ...errors import ImageError, ImageNotFound
from .auth import Challenge, Credential, credentials_for, parse_challenge
from .names import scheme_for

log = logging.getLogger("sandbox.images.registry")

#: Query parameters whose values are safe to log; every other value is hidden.
_SHOWN_PARAMS = ("digest", "mount", "from", "service", "scope", "n", "last")
_MAX_RETRY_AFTER = 30.0
_MAX_TOKEN = 64 << 10
USER_AGENT = "sandbox-registry-client"

Body = bytes | Callable[[], Iterable[bytes]] | None


def redact_url(url: str) -> str:
    """``url`` with every query value but the harmless ones replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = urlencode([(k, v if k in _SHOWN_PARAMS else "***")
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*:/,")
    return urlunsplit(parts._replace(query=query, netloc=parts.netloc.rpartition("@")[2]))


@dataclass
class _Token:
    value: str
    expires: float


class Client:
    """One registry, spoken to over one connection pool, with the auth chain of its credentials."""

    def __init__(self, registry: str, api_host: str, *, insecure: set[str] | frozenset[str] = frozenset(),
                 credentials: list[Credential] | None = None, anonymous: bool = True,
                 timeout: float = 60.0) -> None:
        self.registry = registry
        self.base = f"{scheme_for(registry, set(insecure))}://{api_host}"
        self.credentials = credentials_for(registry) if credentials is None else credentials
        self.anonymous = anonymous  # False: only the credentials (a login check)
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0),
                                  headers={"User-Agent": USER_AGENT})
        self._tokens: dict[str, _Token] = {}
        self._basic: Credential | None = None
        self._token_way = 0  # which credential (then anonymous) the tokens come from
        self.tried: list[str] = []

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return urljoin(self.base + "/", path.lstrip("/")) if not path.startswith("http") else path

    # -- the one request ------------------------------------------------------

    def request(self, method: str, path: str, *, scopes: tuple[str, ...], what: str,
                headers: dict[str, str] | None = None, body: Body = None, stream: bool = False,
                expect: tuple[int, ...] = (200,), missing_ok: bool = False) -> httpx.Response:
        """Send a request with the auth chain; the response if its status is in ``expect``.

        ``body``: bytes, or a function that makes the content anew (a retry
        sends it again). ``stream``: the caller reads (and closes) the body.
        ``missing_ok``: a 404 is returned, not raised (HEAD checks).
        """
        url = self.url(path)
        reauthed = False
        for attempt in range(8):
            response = self._send(method, url, headers, body, stream, scopes)
            if response.status_code == 401 and attempt < 6:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                insufficient = "insufficient_scope" in response.headers.get("WWW-Authenticate", "")
                response.close()
                if challenge is not None and self._authenticate(challenge, scopes, insufficient, reauthed):
                    reauthed = insufficient or reauthed
                    continue
                raise self._refused(what)
            if response.status_code == 429 and attempt < 3 and self._retry_later(response):
                continue
            if response.status_code in expect or (missing_ok and response.status_code == 404):
                return response
            raise self._failed(response, what)
        raise self._refused(what)

    def _send(self, method: str, url: str, headers: dict[str, str] | None, body: Body, stream: bool,
              scopes: tuple[str, ...]) -> httpx.Response:
        sent = dict(headers or {})
        auth = self._authorization(scopes)
        if auth:
            sent["Authorization"] = auth
        content = body() if callable(body) else body
        request = self._http.build_request(method, url, headers=sent, content=content)
        log.debug("%s %s", method, redact_url(url))
        try:
            response = self._http.send(request, stream=stream, follow_redirects=method in ("GET", "HEAD"))
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        log.debug("%s %s -> %d", method, redact_url(url), response.status_code)
        return response

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        token = self._tokens.get(_scope_key(scopes))
        if token is not None and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        if self._basic is not None:
            return self._basic.basic()
        return None

    def _retry_later(self, response: httpx.Response) -> bool:
        """Wait out a 429 that says how long and carries no body; False if it does not."""
        after = response.headers.get("Retry-After", "")
        body = response.read() if not response.is_stream_consumed else b""
        response.close()
        if body or not after.isdigit():
            return False
        time.sleep(min(float(after), _MAX_RETRY_AFTER))
        return True

    # -- authentication -------------------------------------------------------

    def _authenticate(self, challenge: Challenge, scopes: tuple[str, ...], insufficient: bool,
                      reauthed: bool) -> bool:
        """Answer a challenge with the next way of the chain; False when none is left."""
        if challenge.scheme == "basic":
            return self._next_basic()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return False
        key = _scope_key(scopes)
        held = self._tokens.get(key)
        if held is not None and held.expires <= time.monotonic():  # expired: the same way again
            return self._fetch_token(challenge, scopes, key, start=self._token_way)
        if held is not None and not insufficient:  # refused: the next way of the chain
            return self._fetch_token(challenge, scopes, key, start=self._token_way + 1)
        if insufficient and reauthed:
            return False
        wanted = scopes
        if insufficient and challenge.params.get("scope"):
            wanted = tuple(dict.fromkeys((*scopes, *challenge.params["scope"].split(" "))))
        return self._fetch_token(challenge, wanted, key, start=self._token_way if held else 0)

    def _next_basic(self) -> bool:
        if self._basic is None:
            self.tried.append("anonymous")
        index = self.credentials.index(self._basic) + 1 if self._basic in self.credentials else 0
        if index >= len(self.credentials):
            return False
        self._basic = self.credentials[index]
        self.tried.append(self._basic.describe())
        return True

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...], key: str, *, start: int) -> bool:
        """A bearer token for ``scopes`` from the challenge's realm: each way of the chain from
        ``start`` (the credentials, then anonymous) until the token server gives one."""
        ways: list[Credential | None] = [*self.credentials, *([None] if self.anonymous else [])]
        for index in range(start, len(ways)):
            self._token_way = index
            cred = ways[index]
            self.tried.append(cred.describe() if cred else "anonymous")
            token = self._request_token(challenge, scopes, cred)
            if token is not None:
                self._tokens[key] = token
                return True
        return False

    def _request_token(self, challenge: Challenge, scopes: tuple[str, ...],
                       cred: Credential | None) -> _Token | None:
        realm = challenge.params["realm"]
        if not realm.startswith(("https://", "http://")):
            raise ImageError(f"registry {self.registry} names a token server that is not a URL")
        params = (("service", challenge.params.get("service", "")), *(("scope", s) for s in scopes if s))
        try:
            if cred is not None and not cred.username:  # an identity token: OAuth2 refresh
                response = self._http.post(realm, data={
                    "grant_type": "refresh_token", "refresh_token": cred.secret, "client_id": USER_AGENT,
                    "service": challenge.params.get("service", ""), "scope": " ".join(scopes)})
            else:
                headers = {"Authorization": cred.basic()} if cred is not None else {}
                response = self._http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, what=f"the token server of {self.registry}") from None
        log.debug("token %s -> %d", redact_url(str(response.request.url)), response.status_code)
        if response.status_code in (401, 403):
            return None
        return self._parse_token(response)

    def _parse_token(self, response: httpx.Response) -> _Token:
        try:
            if response.status_code != 200 or len(response.content) > _MAX_TOKEN:
                raise ValueError(f"status {response.status_code}")
            doc = response.json()
            value = doc.get("token") or doc.get("access_token")
            if not isinstance(value, str) or not value:
                raise ValueError("no token in the answer")
            expires = doc.get("expires_in", 60)
            expires = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 60.0
        except (ValueError, AttributeError) as exc:
            raise ImageError(f"the token server of {self.registry} answered garbage ({exc})") from None
        return _Token(value, time.monotonic() + max(expires - 5, 1))

    # -- errors ---------------------------------------------------------------

    def _refused(self, what: str) -> ImageError:
        tried = ", ".join(dict.fromkeys(self.tried)) or "anonymous"
        return ImageError(f"registry {self.registry} refused access to {what} (tried: {tried})",
                          hint=f"log in with `sandbox login {self.registry}`, or check the name")

    def _unreachable(self, exc: httpx.HTTPError, what: str | None = None) -> ImageError:
        what = what or f"registry {self.registry}"
        text = str(exc) or type(exc).__name__
        if "SSL" in text or "TLS" in text or "certificate" in text.lower():
            return ImageError(f"cannot speak HTTPS to {what}: {text}",
                              hint=f"if it serves plain HTTP, use --insecure-registry {self.registry}")
        if isinstance(exc, httpx.TimeoutException):
            return ImageError(f"{what} did not answer in time ({type(exc).__name__})")
        return ImageError(f"cannot reach {what} at {self.base}: {text}",
                          hint="is it running, and is the name right?")

    def _failed(self, response: httpx.Response, what: str) -> ImageError:
        codes, message = _registry_errors(response)
        status = response.status_code
        response.close()
        if status == 404 or codes & {"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"}:
            if "NAME_UNKNOWN" in codes:
                return RemoteNotFound(f"{what}: no such repository on {self.registry}")
            return RemoteNotFound(f"{what}: not found on {self.registry}")
        if status in (401, 403) or codes & {"DENIED", "UNAUTHORIZED"}:
            return self._refused(what)
        detail = f": {message}" if message else ""
        return ImageError(f"registry {self.registry} answered {status} for {what}{detail}")


class RemoteNotFound(ImageNotFound):
    """A reference the registry does not have (repository or tag)."""

    def __init__(self, message: str) -> None:
        ImageError.__init__(self, message, hint="check the name and the tag")
        self.name = message


def _registry_errors(response: httpx.Response) -> tuple[set[str], str]:
    """The error codes and first message of a registry's error body (distribution spec)."""
    try:
        body = response.read() if not response.is_stream_consumed else b""
        doc = json.loads(body[:65536]) if body else {}
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errors, list):
            return set(), ""
        codes = {e["code"] for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)}
        message = next((e.get("message") for e in errors if isinstance(e, dict)
                        and isinstance(e.get("message"), str)), "")
        return codes, str(message)[:200]
    except (ValueError, httpx.HTTPError):
        return set(), ""


def _scope_key(scopes: tuple[str, ...]) -> str:
    return " ".join(sorted(scopes))


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"
