"""/v1/networks: list, create, remove named networks (a bridge and subnet each).

Networks are the host's: any token may list them; making and removing one
needs the ``run`` scope, and a token may remove only the networks it made
(an admin any).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from sandbox import create_network, network_rows, remove_network

from ..deps import Reader, Runner
from ..errors import ApiError
from ..models import ERRORS, NetworkCreate, NetworkRemoved, NetworkRow

router = APIRouter(prefix="/networks", tags=["networks"], responses=ERRORS)
#: Who made which network through this daemon (name -> token name).
MADE_BY: dict[str, str] = {}


@router.get("", response_model=list[NetworkRow])
async def list_networks(_caller: Reader) -> list[dict[str, Any]]:
    return await run_in_threadpool(network_rows)


@router.post("", status_code=201, response_model=NetworkRow)
async def create(body: NetworkCreate, caller: Runner) -> dict[str, Any]:
    made = await run_in_threadpool(create_network, body.name, body.subnet,
                                   isolated=body.isolated)
    MADE_BY[body.name] = caller.name
    return {**made, "members": 0}


@router.delete("/{name}", response_model=NetworkRemoved)
async def delete(name: str, caller: Runner) -> dict[str, Any]:
    if not caller.admin and MADE_BY.get(name) != caller.name:
        raise ApiError(403, f"token {caller.name!r} may remove only the networks it made")
    removed = await run_in_threadpool(remove_network, name)
    MADE_BY.pop(name, None)
    return removed
