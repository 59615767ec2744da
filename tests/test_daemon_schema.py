"""Every endpoint against the OpenAPI document (schemathesis): no 500s, answers as documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app

from .daemon_support import tcp_daemon  # noqa: F401 - fixture

pytestmark = pytest.mark.root

schema = schemathesis.openapi.from_dict(create_app().openapi())
#: Not ``positive_data_acceptance``: the document's types are loose on purpose (a size is a
#: number or a string), the engine's constructors judge the values, and refuse many (400).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def live(tcp_daemon):
    """The daemon and an admin token; what the examples made is removed after each operation."""
    token = tcp_daemon.token("schema", "admin")
    with tcp_daemon.tcp(token) as c:
        networks = {n["name"] for n in c.get("/v1/networks").json()}
        yield tcp_daemon, token
        for sandbox in c.get("/v1/sandboxes", params={"all": "true"}).json():
            c.delete(f"/v1/sandboxes/{sandbox['id']}", params={"force": "true"})
        for network in c.get("/v1/networks").json():
            if network["name"] not in networks:
                c.delete(f"/v1/networks/{network['name']}")


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_endpoint(case, live):
    daemon, token = live
    case.call_and_validate(base_url=daemon.url, headers={"Authorization": f"Bearer {token}"},
                           checks=CHECKS, timeout=30)
