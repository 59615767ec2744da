"""The console's routes: its pages, the session cookie, its static files.

``/console/session`` turns a token (sent once as ``Authorization: Bearer``
by the login page, or by a student's page from its URL's fragment) into
the session cookie (``server.deps.COOKIE``: HttpOnly, SameSite=Strict,
Secure on TLS), valid as long as the token is. Pages need a valid session
(or the unix socket), except the login page and the student page, which
sign in with what the URL carries.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..deps import COOKIE, AnyCaller, Caller, EngineDep, authenticate
from ..errors import ApiError
from .pages import page

HERE = Path(__file__).parent
STATIC = HERE / "static"
#: The npm packages scripts/setup.sh installs (`npm ci` in server/console/vendor).
VENDOR = HERE / "vendor" / "node_modules" / "@xterm"
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")

router = APIRouter(include_in_schema=False)


def static_apps() -> list[tuple[str, StaticFiles]]:
    """What ``server.app`` mounts: our own files, and the xterm.js packages from npm."""
    return [("/console/static", StaticFiles(directory=STATIC)),
            ("/console/vendor", StaticFiles(directory=VENDOR, check_dir=False))]


def vendor_installed() -> bool:
    return (VENDOR / "xterm" / "lib" / "xterm.mjs").is_file()


def _who(caller: Caller) -> str:
    return caller.name


def _host(request: Request) -> str:
    return request.headers.get("host", "")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/login")
async def login(request: Request) -> Response:
    return page("Sign in", "login", host=_host(request))


@router.post("/console/session")
async def session(request: Request, engine: EngineDep) -> Response:
    """Sign in: the bearer token of this request becomes the session cookie."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise ApiError(401, "sign in with Authorization: Bearer TOKEN")
    caller = authenticate(request, engine)
    body = {"name": caller.name, "scopes": list(caller.scopes),
            "student": "/".join(caller.student) if caller.student else None}
    response = JSONResponse(body)
    response.set_cookie(COOKIE, header.split(" ", 1)[1].strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/console/logout")
async def logout() -> Response:
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/console/")
async def jobs(request: Request, caller: AnyCaller) -> Response:
    return page("Jobs", "jobs", host=_host(request), who=_who(caller))


@router.get("/console/jobs/{job_id}")
async def job(job_id: str, request: Request, caller: AnyCaller) -> Response:
    return page(f"Job {job_id}", "job", host=_host(request), who=_who(caller), data={"id": job_id})


@router.get("/console/submit")
async def submit(request: Request, caller: AnyCaller) -> Response:
    return page("Submit a job", "submit", host=_host(request), who=_who(caller))


@router.get("/console/sandboxes")
async def sandboxes(request: Request, caller: AnyCaller) -> Response:
    return page("Sandboxes", "sandboxes", host=_host(request), who=_who(caller))


@router.get("/console/sandboxes/{ref}")
async def sandbox(ref: str, request: Request, caller: AnyCaller) -> Response:
    return page(f"Sandbox {ref}", "sandbox", host=_host(request), who=_who(caller),
                data={"id": ref, "xterm": vendor_installed()}, terminal=True)


@router.get("/console/images")
async def images(request: Request, caller: AnyCaller) -> Response:
    return page("Images", "images", host=_host(request), who=_who(caller))


@router.get("/console/classes")
async def classes(request: Request, caller: AnyCaller) -> Response:
    return page("Classes", "classes", host=_host(request), who=_who(caller))


@router.get("/console/classes/{name}")
async def teacher(name: str, request: Request, caller: AnyCaller) -> Response:
    return page(f"Class {name}", "class", host=_host(request), who=_who(caller),
                data={"name": name, "xterm": vendor_installed()}, terminal=True)


@router.get("/console/student/{name}/{student}")
async def student(name: str, student: str, request: Request) -> Response:
    """A student's terminal; it signs in with the token in the URL's fragment."""
    return page(f"{name} · {student}", "student", host=_host(request),
                data={"class": name, "student": student, "xterm": vendor_installed()},
                terminal=True)
