"""`?format=prov` answers PROV-JSON, and the route declares that shape for 200 (it declared only
the graph, so every PROV answer failed its own schema). Found by tests/fuzz/test_registry_api.py."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import World

PATH = "/v1/tenants/{tenant}/adapters/{name}/versions/{version}/lineage"


@pytest.mark.parametrize("fmt", ["graph", "prov"])
def test_both_lineage_formats_match_the_declared_schema(
    world: World, known: dict[str, str], fmt: str
) -> None:
    op = schemathesis.openapi.from_asgi("/openapi.json", world.stack.app)[PATH]["GET"]
    case = op.Case(
        path_parameters={"tenant": "acme", "name": "support", "version": "1"},
        query={"format": fmt},
    )
    response = case.call(headers=world.auditor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert ("prefix" in body) is (fmt == "prov"), body
    case.validate_response(response, checks=[response_schema_conformance])
