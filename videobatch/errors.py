"""One error shape for everything: RFC 9457 problem+json with a stable ``code``.

Services raise the domain errors declared here; the handlers below turn them, and every HTTP,
validation and unexpected error, into the same JSON body.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, g, json
from marshmallow import ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from videobatch import metrics

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class APIError(Exception):
    """An error with a stable code that a client can act on."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class ApiKeyRequired(APIError):
    status, code, title = 401, "api_key_required", "API key required"


class InvalidApiKey(APIError):
    status, code, title = 401, "invalid_api_key", "Invalid API key"


class InvalidWorkerSecret(APIError):
    status, code, title = 401, "invalid_worker_secret", "Invalid worker secret"


class InternalApiDisabled(APIError):
    status, code, title = 503, "internal_api_disabled", "Internal API disabled"


class RequestIdRequired(APIError):
    status, code, title = 400, "request_id_required", "Request id required"


class InvalidRequestId(APIError):
    status, code, title = 400, "invalid_request_id", "Invalid request id"


class RequestIdConflict(APIError):
    status, code, title = 400, "request_id_conflict", "Conflicting request ids"


class InvalidJSON(APIError):
    status, code, title = 400, "invalid_json", "Invalid JSON"


class ValidationFailed(APIError):
    status, code, title = 400, "validation_error", "Validation error"


class InsufficientCredits(APIError):
    status, code, title = 402, "insufficient_credits", "Insufficient credits"


class NotFound(APIError):
    status, code, title = 404, "not_found", "Not found"


class RequestInProgress(APIError):
    status, code, title = 409, "request_in_progress", "Request in progress"


class LeaseLost(APIError):
    status, code, title = 409, "lease_lost", "Lease lost"


class IdempotencyKeyReused(APIError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class ServiceUnavailable(APIError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


# Werkzeug's HTTP errors that reach us, by status: the code a client sees for each.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    """The one place an error body is made."""
    body: dict[str, Any] = {
        "ok": False,
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    request_id = g.get("request_id")
    if request_id is not None:
        body["request_id"] = request_id
    body.update(extra)
    metrics.ERRORS.labels(str(status), code).inc()
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype=PROBLEM_JSON)


def register_error_handlers(app: Flask) -> None:
    """Route every error, expected or not, through ``problem``."""

    @app.errorhandler(APIError)
    def handle_api_error(error: APIError) -> Response:
        response = problem(error.status, error.code, error.title, error.detail, **error.extra)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(ValidationError)
    def handle_validation_error(error: ValidationError) -> Response:
        return problem(
            400,
            "validation_error",
            "Validation error",
            "The request body failed validation",
            errors=error.normalized_messages(),
        )

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = problem(
            status,
            HTTP_CODES.get(status, "http_error"),
            error.name,
            error.description or error.name,
        )
        if status == 405 and error.response is None:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(sa_exc.DBAPIError)
    @app.errorhandler(sa_exc.TimeoutError)
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def handle_dependency_error(error: Exception) -> Response:
        # A dependency that is down, stuck past its timeout, or out of pooled connections is a
        # 503 the client may retry, not a 500. Other database errors (integrity, data) are bugs.
        if isinstance(error, sa_exc.DBAPIError) and not (
            isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or error.connection_invalidated
        ):
            return handle_unexpected(error)
        log.warning("dependency unavailable: %s", type(error).__name__)
        response = problem(
            503,
            "service_unavailable",
            "Service unavailable",
            "A dependency did not answer in time; retry shortly",
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem(
            500,
            "internal_error",
            "Internal server error",
            "An unexpected error occurred; it has been logged",
        )
