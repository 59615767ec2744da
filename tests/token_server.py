"""A small token server for docker-registry's token auth (the distribution spec's bearer flow).

Run as ``python3 token_server.py PORT DIR``: DIR holds key.pem and cert.pem (the
registry's rootcertbundle) and users.json (``{"name": ["password", "pull,push"]}``).
``GET /token?service=...&scope=repository:NAME:ACTIONS`` with basic auth of a known
user answers ``{"token": JWT}``, RS256-signed with the key (openssl), the cert in
its ``x5c`` header, granting the asked actions that the user has; anything else is
401. Each token issued is logged to DIR/issued.log as JSON (user, scopes asked).
Test-only: it binds loopback and is stopped by the test that started it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SERVICE, ISSUER = "sandbox-test-registry", "sandbox-test-issuer"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der(pem: str) -> str:
    body = "".join(line for line in pem.splitlines() if "CERTIFICATE" not in line)
    return body


def sign(root: Path, claims: dict) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der((root / "cert.pem").read_text())]}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(root / "key.pem")],
                               input=signing_input.encode(), capture_output=True, check=True).stdout
    return f"{signing_input}.{b64(signature)}"


def make_handler(root: Path):
    users = json.loads((root / "users.json").read_text())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            user = self._user()
            if user is None:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            granted = users[user][1].split(",")
            access = []
            for scope in query.get("scope", []):
                for item in scope.split(" "):
                    kind, _, rest = item.partition(":")
                    name, _, actions = rest.rpartition(":")
                    allowed = [a for a in actions.split(",") if a in granted]
                    access.append({"type": kind, "name": name, "actions": allowed})
            now = int(time.time())
            claims = {"iss": ISSUER, "sub": user, "aud": query.get("service", [SERVICE])[0], "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
            with open(root / "issued.log", "a") as log:
                log.write(json.dumps({"user": user, "scopes": query.get("scope", [])}) + "\n")
            body = json.dumps({"token": sign(root, claims), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return name if name in users and users[name][0] == password else None

    return Handler


def main() -> None:
    port, root = int(sys.argv[1]), Path(sys.argv[2])
    (root / "issued.log").touch()
    ThreadingHTTPServer(("127.0.0.1", port), make_handler(root)).serve_forever()


if __name__ == "__main__":
    main()
