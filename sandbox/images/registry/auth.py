"""Credentials for registries, and the challenges registries answer with.

Where credentials come from, in order (the first that has the registry wins):

1. ``sandbox login``'s file, ``$SANDBOX_STATE_DIR/auth.json`` (mode 0600 in a
   0700 directory: root's only), in config.json's shape;
2. Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``): ``auths`` entries, and ``credHelpers`` /
   ``credsStore`` helpers (``docker-credential-NAME get``, the registry on
   its standard input, as Docker calls them).

A Credential never shows its secret: not in repr, not in an error (errors
name the user and where the credential came from). The password of
``sandbox login`` is read from standard input, never from the command line
(which every user can read in ps(1)).

``parse_challenge`` reads ``WWW-Authenticate`` (RFC 7235 auth-params:
``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ... import state
from ...errors import ImageError

AUTH_FILE = "auth.json"
_MAX_CONFIG = 1 << 20
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Credential:
    """A user name and its secret (a password or an identity token), and where it came from."""

    username: str
    secret: str = field(repr=False)
    source: str = ""

    def describe(self) -> str:
        """Who this is and from where, for messages; never the secret."""
        return f"user {self.username!r} from {self.source}" if self.username else f"a token from {self.source}"

    def basic(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate`` challenge: its scheme (lowercase) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first challenge of a ``WWW-Authenticate`` header; None if it cannot be read."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or not scheme.isalnum():
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if not match or match.end() == pos:
            break
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme.lower(), params)


# -- where credentials are stored ---------------------------------------------

def auth_file() -> Path:
    return state.lib_dir() / AUTH_FILE


def docker_config() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def credentials_for(registry: str) -> list[Credential]:
    """Every credential known for ``registry`` (host[:port]), best first."""
    found = []
    for path in (auth_file(), docker_config()):
        config = _read_config(path)
        cred = _from_auths(config, registry, path) or _from_helper(config, registry, path)
        if cred is not None:
            found.append(cred)
    return found


def _read_config(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CONFIG + 1)
    except OSError:
        return {}
    try:
        doc = json.loads(data) if len(data) <= _MAX_CONFIG else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ImageError(f"cannot read credentials from {path}: not a JSON object of at most 1 MiB",
                         hint="fix or remove the file")
    return doc


def _keys(registry: str) -> tuple[str, ...]:
    """The keys config.json files use for a registry (Docker Hub has a legacy URL)."""
    if registry == "docker.io":
        return ("https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io")
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/")


def _from_auths(config: dict, registry: str, path: Path) -> Credential | None:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _keys(registry):
        entry = auths.get(key)
        if isinstance(entry, dict):
            if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
                return Credential("", entry["identitytoken"], str(path))
            if isinstance(entry.get("auth"), str) and entry["auth"]:
                try:
                    user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise ImageError(f"the credentials for {registry} in {path} are not base64 "
                                     "of USER:PASSWORD", hint=f"run `sandbox login {registry}` again") from None
                return Credential(user, secret, str(path))
    return None


def _from_helper(config: dict, registry: str, path: Path) -> Credential | None:
    helpers = config.get("credHelpers")
    if not isinstance(helpers, dict):
        helpers = {}
    helper = next((helpers[k] for k in _keys(registry) if isinstance(helpers.get(k), str)), None)
    if helper is None and isinstance(config.get("credsStore"), str):
        helper = config["credsStore"]
    if not helper or not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        return None
    program = f"docker-credential-{helper}"
    try:
        out = subprocess.run([program, "get"], input=_keys(registry)[0].encode(), capture_output=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None  # the helper knows nothing of this registry
    try:
        doc = json.loads(out.stdout)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"the credential helper {program} (named in {path}) answered garbage") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise ImageError(f"the credential helper {program} (named in {path}) answered garbage")
    return Credential("" if user == "<token>" else user, secret, f"{program} (named in {path})")


# -- sandbox login / logout ---------------------------------------------------

def store_credential(registry: str, username: str, secret: str) -> Path:
    """Remember ``username``/``secret`` for ``registry`` in the login file (root's only)."""
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = _read_config(path) if path.exists() else {}
    auths = config.setdefault("auths", {})
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    auths[registry] = {"auth": token}
    _write_private(path, json.dumps(config, indent=1).encode())
    return path


def forget_credential(registry: str) -> bool:
    """Drop the login file's entry for ``registry``; False if there was none."""
    path = auth_file()
    config = _read_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict) or registry not in auths:
        return False
    del auths[registry]
    _write_private(path, json.dumps(config, indent=1).encode())
    return True


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a 0600 file renamed over it: never readable by others."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
