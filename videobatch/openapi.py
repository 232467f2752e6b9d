"""The OpenAPI 3.1 document, generated from the marshmallow schemas by apispec.

``OPERATIONS`` says, for each endpoint, which schemas it reads and answers and which error codes
it can answer with; the paths, parameters and summaries come from the app's own routes and view
docstrings, so the document cannot drift from the code that serves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema, fields, validate

from videobatch import errors
from videobatch.config import Config
from videobatch.schemas.account import CreditsSchema
from videobatch.schemas.batch import (
    BatchCreatedSchema,
    BatchCreateSchema,
    BatchDetailSchema,
    BatchListQuerySchema,
    BatchListSchema,
    PageQuerySchema,
)
from videobatch.schemas.common import NonBlankString, ProblemSchema, StrictInteger, Timestamp
from videobatch.schemas.worker import (
    ClaimRequestSchema,
    ClaimResponseSchema,
    CompleteRequestSchema,
    FailRequestSchema,
    HeartbeatRequestSchema,
    HeartbeatResponseSchema,
    RunOnceRequestSchema,
    RunOnceResponseSchema,
    TaskOutcomeSchema,
)

OPENAPI_VERSION = "3.1.0"
API_KEY_SECURITY = [{"ApiKey": []}, {"ApiKeyBearer": []}]
WORKER_SECURITY = [{"WorkerSecret": []}, {"WorkerSecretBearer": []}]


@dataclass(frozen=True)
class ErrorCode:
    status: int
    code: str
    title: str


def api_error(error: type[errors.APIError]) -> ErrorCode:
    return ErrorCode(error.status, error.code, error.title)


def http_error(status: int, title: str) -> ErrorCode:
    return ErrorCode(status, errors.HTTP_CODES[status], title)


NOT_FOUND = api_error(errors.NotFound)
VALIDATION = api_error(errors.ValidationFailed)
RATE_LIMITED = http_error(429, "Too many requests")
PAYLOAD_TOO_LARGE = http_error(413, "Payload too large")
LEASE_LOST = api_error(errors.LeaseLost)
UNAVAILABLE = api_error(errors.ServiceUnavailable)  # a dependency down: retry after Retry-After
API_KEY_ERRORS = (
    api_error(errors.ApiKeyRequired),
    api_error(errors.InvalidApiKey),
    RATE_LIMITED,
    UNAVAILABLE,
)
WORKER_ERRORS = (
    api_error(errors.InvalidWorkerSecret),
    api_error(errors.InternalApiDisabled),
    RATE_LIMITED,
    UNAVAILABLE,
)
BODY_ERRORS = (api_error(errors.InvalidJSON), VALIDATION, PAYLOAD_TOO_LARGE)


@dataclass(frozen=True)
class Operation:
    """What one endpoint reads and answers, beyond what its route already says."""

    tag: str
    responses: dict[int, type[Schema] | str]  # a schema, or the name of a component below
    errors: tuple[ErrorCode, ...] = ()
    body: type[Schema] | None = None
    body_required: bool = True
    media_type: str = "application/json"
    query: type[Schema] | None = None
    headers: tuple[dict[str, Any], ...] = ()
    security: list[dict[str, list]] | None = field(default_factory=lambda: API_KEY_SECURITY)
    response_headers: dict[int, dict[str, Any]] = field(default_factory=dict)


REQUEST_ID_HEADERS = (
    {
        "in": "header",
        "name": "x-request-id",
        "description": "The request id (idempotency key); this or Idempotency-Key is required.",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    },
    {
        "in": "header",
        "name": "Idempotency-Key",
        "description": "The request id as the standard header (a bare or quoted string); "
        "when both headers are sent they must be equal.",
        "schema": {
            "type": "string",
            "pattern": '^(?:"[\\x21-\\x7e]{1,255}"|[\\x21-\\x7e]{1,255})$',
        },
    },
)

OPERATIONS: dict[str, Operation] = {
    "enterprise.create_batch": Operation(
        tag="batches",
        body=BatchCreateSchema,
        headers=REQUEST_ID_HEADERS,
        responses={201: BatchCreatedSchema, 200: BatchCreatedSchema},
        response_headers={
            200: {
                "Idempotent-Replayed": {
                    "description": "`true` on a replay",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        },
        errors=(
            *BODY_ERRORS,
            api_error(errors.RequestIdRequired),
            api_error(errors.InvalidRequestId),
            api_error(errors.RequestIdConflict),
            api_error(errors.InsufficientCredits),
            api_error(errors.RequestInProgress),
            api_error(errors.IdempotencyKeyReused),
        ),
    ),
    "enterprise.list_batches": Operation(
        tag="batches",
        query=BatchListQuerySchema,
        responses={200: BatchListSchema},
        errors=(VALIDATION, NOT_FOUND),
    ),
    "enterprise.get_batch": Operation(
        tag="batches", responses={200: BatchDetailSchema}, errors=(NOT_FOUND,)
    ),
    "enterprise.cancel_batch": Operation(
        tag="batches", responses={200: BatchDetailSchema}, errors=(NOT_FOUND,)
    ),
    "enterprise.get_credits": Operation(
        tag="credits",
        query=PageQuerySchema,
        responses={200: CreditsSchema},
        errors=(VALIDATION, NOT_FOUND),
    ),
    "internal.claim": Operation(
        tag="worker",
        security=WORKER_SECURITY,
        body=ClaimRequestSchema,
        body_required=False,
        responses={200: ClaimResponseSchema},
        errors=BODY_ERRORS,
    ),
    "internal.heartbeat": Operation(
        tag="worker",
        security=WORKER_SECURITY,
        body=HeartbeatRequestSchema,
        responses={200: HeartbeatResponseSchema},
        errors=(*BODY_ERRORS, LEASE_LOST),
    ),
    "internal.complete": Operation(
        tag="worker",
        security=WORKER_SECURITY,
        body=CompleteRequestSchema,
        responses={200: TaskOutcomeSchema},
        errors=(*BODY_ERRORS, LEASE_LOST),
    ),
    "internal.fail": Operation(
        tag="worker",
        security=WORKER_SECURITY,
        body=FailRequestSchema,
        responses={200: TaskOutcomeSchema},
        errors=(*BODY_ERRORS, LEASE_LOST),
    ),
    "internal.run_once": Operation(
        tag="worker",
        security=WORKER_SECURITY,
        body=RunOnceRequestSchema,
        body_required=False,
        responses={200: RunOnceResponseSchema},
        errors=BODY_ERRORS,
    ),
    "health.healthz": Operation(tag="health", security=None, responses={200: "Health"}),
    "health.readyz": Operation(
        tag="health",
        security=None,
        responses={200: "Health"},
        errors=(UNAVAILABLE,),
    ),
    "health.metrics": Operation(
        tag="health", security=None, responses={200: "Metrics"}, media_type="text/plain"
    ),
}

# Shapes with no marshmallow schema behind them (the probes answer plain dicts).
PLAIN_COMPONENTS = {
    "Health": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean", "const": True},
            "checks": {"type": "object", "description": "Each dependency and how it answered"},
        },
        "required": ["ok"],
    },
    "Metrics": {"type": "string", "description": "Prometheus text exposition format"},
}

TAGS = [
    {"name": "batches", "description": "Submit video batches and follow them to the end."},
    {"name": "credits", "description": "The credit balance and where it went."},
    {"name": "worker", "description": "The internal API that video workers call."},
    {"name": "health", "description": "Probes for load balancers and orchestrators."},
]

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "The API key"},
    "WorkerSecret": {"type": "apiKey", "in": "header", "name": "x-internal-secret"},
    "WorkerSecretBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "INTERNAL_WORKER_SECRET",
    },
}

RETRY_AFTER_STATUSES = (409, 429, 503)
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying (sent with the codes that invite a retry)",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")
CONVERTER_SCHEMAS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer", "minimum": 0},
    None: {"type": "string"},
    "string": {"type": "string"},
}


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """``/x/<uuid:batch_id>`` as ``/x/{batch_id}``, with its path parameters."""
    parameters = [
        {
            "in": "path",
            "name": match["name"],
            "required": True,
            "schema": CONVERTER_SCHEMAS[match["converter"]],
        }
        for match in RULE_ARGUMENT.finditer(rule)
    ]
    return RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule), parameters


def _error_responses(codes: tuple[ErrorCode, ...]) -> dict[str, Any]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, [])
        if code not in by_status[code.status]:
            by_status[code.status].append(code)
    responses: dict[str, Any] = {}
    for status, listed in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "; ".join(f"`{code.code}`: {code.title}" for code in listed),
            "content": {"application/problem+json": {"schema": "Problem"}},
        }
        if status in RETRY_AFTER_STATUSES:
            response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        responses[str(status)] = response
    return responses


def _operation(app: Flask, endpoint: str, spec_op: Operation, path_params: list) -> dict:
    doc = (app.view_functions[endpoint].__doc__ or "").strip()
    summary, _, description = doc.partition("\n")
    responses: dict[str, Any] = {
        str(status): {
            "description": summary or "Success",
            "content": {spec_op.media_type: {"schema": schema}},
        }
        for status, schema in spec_op.responses.items()
    }
    for status, headers in spec_op.response_headers.items():
        responses[str(status)]["headers"] = headers
    error_codes = spec_op.errors
    if spec_op.security is API_KEY_SECURITY:
        error_codes = (*API_KEY_ERRORS, *error_codes)
    elif spec_op.security is WORKER_SECURITY:
        error_codes = (*WORKER_ERRORS, *error_codes)
    if path_params:
        error_codes = (*error_codes, NOT_FOUND)
    responses.update(_error_responses(error_codes))
    operation: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "tags": [spec_op.tag],
        "summary": summary,
        "parameters": [*path_params, *spec_op.headers],
        "responses": responses,
    }
    if description.strip():
        operation["description"] = description.strip()
    if spec_op.query is not None:
        operation["parameters"].append({"in": "query", "schema": spec_op.query})
    if spec_op.body is not None:
        operation["requestBody"] = {
            "required": spec_op.body_required,
            "content": {"application/json": {"schema": spec_op.body}},
        }
    operation["security"] = spec_op.security or []
    return operation


def _state_what_code_checks(document: dict[str, Any], config: Config) -> None:
    # Rules enforced by validators in code, not by field types, are written into the document
    # here so that it accepts exactly what the service accepts.
    schemas = document["components"]["schemas"]
    create = schemas["BatchCreate"]["properties"]
    create["items"].update(minItems=1, maxItems=config.max_items_per_batch)
    create["metadata"].update(maxProperties=16, propertyNames={"minLength": 1, "maxLength": 64})
    create["metadata"]["additionalProperties"].update(maxLength=500)
    # RFC 9457: a problem may carry extension members beyond the ones listed.
    schemas["Problem"]["additionalProperties"] = True
    schemas["Problem"]["properties"]["ok"] = {"type": "boolean", "const": False}


def _field_attributes(converter: Any, field: fields.Field, ret: dict, **_: Any) -> dict:
    """What videobatch's own field types add to the JSON schema of a field."""
    if isinstance(field, NonBlankString):
        return {"pattern": r"\S"}
    if isinstance(field, fields.Constant) and isinstance(field.constant, bool):
        return {"type": "boolean", "const": field.constant}
    for validator in field.validators:
        if isinstance(validator, validate.URL):
            schemes = "|".join(sorted(validator.schemes))
            return {"format": "uri", "pattern": f"^(?:{schemes})://"}
    return {}


def build_openapi(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for every documented route of ``app``."""
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(
        title="videobatch",
        version="1",
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": "Idempotent, credit-charging batches of AI video-generation prompts.",
        },
        tags=TAGS,
    )
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    plugin.map_to_openapi_type(StrictInteger, "integer", None)
    plugin.map_to_openapi_type(NonBlankString, "string", None)
    plugin.converter.add_attribute_function(_field_attributes)
    spec.components.schema("Problem", schema=ProblemSchema)
    for name, component in PLAIN_COMPONENTS.items():
        spec.components.schema(name, component)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    operations: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        documented = OPERATIONS.get(rule.endpoint)
        if documented is None:
            continue
        path, path_params = _openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations.setdefault(path, {})[method.lower()] = _operation(
                app, rule.endpoint, documented, path_params
            )
    for path, by_method in operations.items():
        spec.path(path=path, operations=by_method)
    document = spec.to_dict()
    _state_what_code_checks(document, app.extensions["videobatch.config"])
    return document


def _schema_name(schema: Any) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")
