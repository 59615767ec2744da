"""The console's pages: small HTML shells, each naming the JavaScript module that fills it.

A page is the same for everyone (what it shows it fetches from /v1 with
the caller's own rights), so nothing here reads data: the shell gives the
module what it needs to start (``data``: an id, a name) as a JSON attribute.
Every page is sent with a strict Content-Security-Policy: scripts and
styles only from this daemon, connections only to it.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi.responses import HTMLResponse

NAV = (("Jobs", "/console/"), ("Submit", "/console/submit"), ("Sandboxes", "/console/sandboxes"),
       ("Images", "/console/images"), ("Classes", "/console/classes"))
XTERM_CSS = "/console/vendor/xterm/css/xterm.css"


def security_headers(host: str) -> dict[str, str]:
    sockets = f" ws://{host} wss://{host}" if host else ""
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data:; font-src 'self'; connect-src 'self'{sockets}; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def page(title: str, module: str, *, host: str, who: str | None = None,
         data: dict[str, Any] | None = None, terminal: bool = False) -> HTMLResponse:
    """The shell of one page: the navigation (for a signed-in user), a main element the
    module ``static/js/<module>.js`` fills, the xterm.js stylesheet for terminal pages."""
    nav = ""
    if who is not None:
        links = "".join(f'<a href="{href}">{name}</a>' for name, href in NAV)
        nav = (f'<header><nav><strong class="brand">sandbox</strong>{links}'
               f'<span class="who">{html.escape(who)}</span>'
               '<button id="logout" type="button">Log out</button></nav></header>')
    extra = f'<link rel="stylesheet" href="{XTERM_CSS}">' if terminal else ""
    body = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)} · sandbox</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"{extra}</head><body>{nav}"
        f'<main id="main" data-page="{html.escape(json.dumps(data or {}))}">'
        f"<h1>{html.escape(title)}</h1><noscript>The console needs JavaScript.</noscript></main>"
        f'<script type="module" src="/console/static/js/{module}.js"></script>'
        "</body></html>\n")
    return HTMLResponse(body, headers=security_headers(host))
