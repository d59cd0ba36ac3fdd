"""The gateway's OpenAPI: OpenAI's request and response shapes, declared for documentation,
clients and schema checks only. The inference routes still read the raw body (streamed under
the body limit) and forward it as it is; nothing here validates a request.

The generation limits are the deployment's (`gateway_max_tokens`, `gateway_max_n`), so the
document says what this gateway accepts. Fields the engine understands beyond these (vLLM's
extensions) pass through: the objects allow more properties.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from registry.settings import Settings

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
Schema = dict[str, Any]


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _bounded(limit: int) -> Schema:
    return _nullable({"type": "integer", "minimum": 1, "maximum": limit})


def _strings() -> Schema:
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


MODEL: Schema = {
    "type": "string",
    "description": "one of your adapters: 'name', 'name@alias' or 'name@vN'; or one of your "
    "fine-tuned models, 'ft:<base>:<tenant>:<suffix>:<id>', or its checkpoint "
    "'ft:...:ckpt-step-<N>'",
}
MESSAGE: Schema = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": _nullable(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
        ),
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"},
    },
}
TOOL: Schema = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "parameters": {"type": "object"},
            },
        },
    },
}

TOOL_CHOICE: Schema = {
    "description": "'none', 'auto' (the default when tools are given), 'required', or one "
    "named function; needs a base model registered with a tool-call parser",
    "anyOf": [
        {"type": "string", "enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "required": ["type", "function"],
            "properties": {
                "type": {"type": "string", "enum": ["function"]},
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            },
        },
    ],
}
RESPONSE_FORMAT: Schema = {
    "description": "'json_schema' constrains the answer to the schema (the engine's structured "
    "outputs); 'json_object' to any JSON object",
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
        "json_schema": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "schema": {"type": "object"},
                "strict": _nullable({"type": "boolean"}),
            },
        },
    },
}
TOOL_CALL: Schema = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "string", "description": "a JSON object, as text"},
            },
        },
    },
}


def _sampling(settings: Settings) -> dict[str, Schema]:
    """Fields both endpoints take."""
    return {
        "model": MODEL,
        "max_tokens": _bounded(settings.gateway_max_tokens),
        "n": _bounded(settings.gateway_max_n),
        "stream": _nullable({"type": "boolean"}),
        "stream_options": _nullable(
            {"type": "object", "properties": {"include_usage": {"type": "boolean"}}}
        ),
        "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
        "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "stop": _nullable(_strings()),
        "seed": _nullable({"type": "integer"}),
        "user": {"type": "string"},
    }


def chat_request(settings: Settings) -> Schema:
    properties = _sampling(settings) | {
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "max_completion_tokens": _bounded(settings.gateway_max_tokens),
        "tools": {"type": "array", "items": TOOL},
        "tool_choice": TOOL_CHOICE,
        "parallel_tool_calls": _nullable({"type": "boolean"}),
        "response_format": RESPONSE_FORMAT,
    }
    return {"type": "object", "required": ["model", "messages"], "properties": properties}


def completion_request(settings: Settings) -> Schema:
    properties = _sampling(settings) | {
        "prompt": _strings(),
        "best_of": _bounded(settings.gateway_max_n),
        "echo": _nullable({"type": "boolean"}),
    }
    return {"type": "object", "required": ["model", "prompt"], "properties": properties}


ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": _nullable({"type": "string"}),
                "code": _nullable({"type": "string"}),
            },
        }
    },
}
ERRORS: dict[int, str] = {
    400: "Bad request: not a JSON object, an unknown model form, over a generation limit",
    401: "Missing, invalid or expired token",
    403: "Not a tenant's token, or no 'inference' scope",
    404: "No such model for your tenant (or a deleted fine-tuned model)",
    409: "The version exists but is not ready to serve",
    413: "Request body over gateway_max_body_bytes",
    429: "Rate limit or token budget reached (Retry-After)",
    503: "The inference engine is unavailable",
}
# A chat choice has `message` (with `tool_calls` when the model called tools; `finish_reason`
# is then 'tool_calls'), a text completion's has `text`. In a stream, `delta.tool_calls` items
# carry `index` (the call within the choice), then `id` and `function.name` once, then pieces
# of `function.arguments` to concatenate.
CHOICE: Schema = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "message": {
            "type": "object",
            "properties": {
                "role": {"type": "string"},
                "content": _nullable({"type": "string"}),
                "tool_calls": {"type": "array", "items": TOOL_CALL},
            },
        },
        "text": {"type": "string"},
        "finish_reason": _nullable(
            {"type": "string", "description": "'stop', 'length', 'tool_calls', ..."}
        ),
    },
}
COMPLETION: Schema = {
    "type": "object",
    "required": ["id", "object", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {"type": "array", "items": CHOICE},
        "usage": _nullable({"type": "object"}),
    },
}


# One server-sent event (before OpenAPI 3.2, `schema` describes each event of a stream): `data`
# is a chunk object as JSON text, and the last event's is `[DONE]`.
EVENT: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}


def error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for each status in `described`, all in OpenAI's error shape."""
    return {
        code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
        for code, text in described.items()
    }


def inference(request_schema: Schema) -> dict[str, Any]:
    """Route keywords for an inference endpoint (`@app.post(path, **inference(schema))`)."""
    ok = {
        "description": "The engine's answer; with 'stream': true, server-sent events",
        "content": {
            "application/json": {"schema": COMPLETION},
            "text/event-stream": {"schema": EVENT},
        },
    }
    return {
        "responses": {200: ok} | error_responses(ERRORS),
        "openapi_extra": {
            "security": BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_schema}},
            },
        },
    }


# The files, fine-tuning and models routes (registry.finetuning) declare their own bodies;
# the gateway adds the errors every one of them may answer, in OpenAI's shape.
OPENAI_ERRORS: dict[int, str] = {
    400: "Bad request: invalid input (param names the field), or an operation the object's "
    "state does not allow (code says which)",
    401: "Missing, invalid or expired token",
    403: "Not a tenant's token, or the route's scope is missing",
    404: "No such file, job, checkpoint or model for your tenant (another tenant's included)",
    409: "Conflict: the tenant is disabled, or a concurrent change",
    413: "Upload over the size limit",
    429: "Rate limit or quota reached (Retry-After)",
    503: "The database, object store or broker is unavailable; retry shortly",
}
READY: dict[str, Any] = {
    "responses": {
        code: {
            "description": text,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {
                            "status": {"type": "string"},
                            "checks": {
                                "type": "object",
                                "additionalProperties": {"type": "boolean"},
                            },
                        },
                    }
                }
            },
        }
        for code, text in {200: "Ready", 503: "A dependency is down (named in checks)"}.items()
    }
}


def install(app: FastAPI) -> None:
    """Add the bearer scheme the inference routes name (`security`). The registry's routes
    (files, fine-tuning, models) take the same token but, as in the registry's own document,
    say so in their 401/403 answers rather than in `security`."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()  # cached by FastAPI as app.openapi_schema: changed in place
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
