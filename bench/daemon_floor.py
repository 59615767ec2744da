"""The least a FastAPI daemon on uvicorn can do for create, start, wait and delete: a floor.

    python3 bench/daemon_floor.py SOCKET [ROUTES]   (bench/daemon.py starts it; not for use)

bench/daemon.py's HTTP target (create + start + wait + delete within 1.5x of the
in-process API) was set for a daemon on FastAPI and uvicorn. This app is what that
costs with nothing of ours around the engine: four routes with a path parameter
and a JSON body as a plain dict, no authentication, no dependencies, no request or
response models, no log buffers, no owners; the engine's blocking calls in
Starlette's thread pool as ours are, the end awaited without a thread (the
monitor's thread resolves a future). The same client (``sandbox.client``) talks
to it and to the daemon, so the difference between the two rows is the daemon's
own. It is not an API anyone should use: it checks nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from sandbox import Sandbox, SandboxSpec

app = FastAPI()
HELD: dict[str, tuple[Sandbox, asyncio.Future]] = {}


@app.post("/v1/sandboxes", status_code=201)
async def create(request: Request) -> dict[str, Any]:
    spec = SandboxSpec.from_dict(await request.json())
    sandbox = Sandbox(spec, log_file=False)
    await run_in_threadpool(sandbox.create)
    HELD[sandbox.id] = (sandbox, asyncio.get_running_loop().create_future())
    return {"id": sandbox.id}


@app.post("/v1/sandboxes/{ref}/start", status_code=204)
async def start(ref: str) -> None:
    sandbox, ended = HELD[ref]
    loop = asyncio.get_running_loop()

    def on_ended(box: Sandbox) -> None:  # in the monitor's thread
        result = box.wait()
        box.destroy()
        loop.call_soon_threadsafe(ended.set_result, result.exit_code)

    await run_in_threadpool(lambda: sandbox.start(background=True, on_ended=on_ended))


@app.post("/v1/sandboxes/{ref}/wait")
async def wait(ref: str) -> dict[str, Any]:
    return {"exit_code": await HELD[ref][1]}


@app.delete("/v1/sandboxes/{ref}")
async def delete(ref: str) -> dict[str, str]:
    HELD.pop(ref)
    return {"id": ref}


def pad(total: int) -> None:
    """Routes that answer nothing, after the four, up to ``total`` in all: to see whether
    the number of routes matters (FastAPI 0.165 looks at every route of an app in each
    request; the daemon has about 70)."""
    for index in range(total - len(app.routes)):
        app.add_api_route(f"/v1/unused/{index}/{{ref}}", lambda ref: None, methods=["GET"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("socket", help="the unix socket to serve on (bench/daemon.py passes it)")
    parser.add_argument("routes", type=int, nargs="?", help="routes in all, the four padded with unused ones")
    args = parser.parse_args()
    if args.routes is not None:
        pad(args.routes)
    uvicorn.run(app, uds=args.socket, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
