"""POST /v1/base-models finds out whether the chat template renders tools, and takes the vLLM
tool-call parser the engine will serve it with: only for a template that renders them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import World
from tests.lora_files import make_base_model
from tests.registry.base_models.templates import HERMES, PLAIN, with_template


def register(world: World, name: str, folder: Path, **body: object):  # type: ignore[no-untyped-def]
    return world.http.post(
        "/v1/base-models",
        json={"name": name, "uri": str(folder), **body},
        headers=world.ops.headers,
    )


def test_a_hermes_template_with_its_parser(world: World, tmp_path: Path) -> None:
    folder = with_template(make_base_model(tmp_path / "qwenish"), HERMES)
    resp = register(world, "qwenish", folder, tool_call_parser="hermes")
    assert resp.status_code == 201, resp.text
    assert resp.json()["chat_template_tools"] is True
    assert resp.json()["tool_call_parser"] == "hermes"
    acme = world.tenant("acme")
    for caller in (world.ops, world.auditor, acme):
        one = world.http.get("/v1/base-models/qwenish", headers=caller.headers).json()
        listed = world.http.get("/v1/base-models", headers=caller.headers).json()
        assert one["chat_template_tools"] is True and one["tool_call_parser"] == "hermes"
        assert [(m["chat_template_tools"], m["tool_call_parser"]) for m in listed] == [
            (True, "hermes")
        ]


def test_without_a_parser_no_tool_calling_is_served(world: World, tmp_path: Path) -> None:
    folder = with_template(make_base_model(tmp_path / "qwenish"), HERMES)
    resp = register(world, "qwenish", folder)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["chat_template_tools"], resp.json()["tool_call_parser"]) == (True, None)
    for name, model in (("plain", PLAIN), ("bare", None)):
        folder = make_base_model(tmp_path / name)
        if model is not None:
            with_template(folder, model)
        resp = register(world, name, folder)
        assert resp.status_code == 201, resp.text
        assert (resp.json()["chat_template_tools"], resp.json()["tool_call_parser"]) == (
            False,
            None,
        )


def test_a_parser_for_a_template_without_tools_is_422(world: World, tmp_path: Path) -> None:
    cases = [
        (with_template(make_base_model(tmp_path / "plain"), PLAIN), "does not render the `tools`"),
        (make_base_model(tmp_path / "bare"), "has no chat template"),
        (
            with_template(make_base_model(tmp_path / "raises"), "{{ raise_exception('nope') }}"),
            "nope",
        ),
    ]
    for folder, why in cases:
        resp = register(world, "m", folder, tool_call_parser="hermes")
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        assert "tool_call_parser 'hermes'" in detail and why in detail, detail
        assert "without tool_call_parser" in detail
    assert world.http.get("/v1/base-models", headers=world.ops.headers).json() == []


def test_an_unknown_parser_is_422(world: World, tmp_path: Path) -> None:
    folder = with_template(make_base_model(tmp_path / "qwenish"), HERMES)
    resp = register(world, "qwenish", folder, tool_call_parser="hermes2")
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "'hermes2' is not one of vLLM's tool-call parsers" in detail and "llama3_json" in detail
    assert world.http.get("/v1/base-models", headers=world.ops.headers).json() == []


def test_openapi_documents_the_fields(world: World) -> None:
    schemas = world.http.get("/openapi.json").json()["components"]["schemas"]
    assert "tool_call_parser" in schemas["BaseModelCreate"]["properties"]
    out = schemas["BaseModelOut"]["properties"]
    assert "renders `tools`" in out["chat_template_tools"]["description"]
    assert "tool-call parser" in out["tool_call_parser"]["description"]
