"""The public API under /api/enterprise, scoped to the caller's account."""

from __future__ import annotations

import functools
import uuid

from flask import Blueprint, current_app, g, request

from videobatch import metrics
from videobatch.api.common import load_json, load_query
from videobatch.auth import Caller, bearer_or_header
from videobatch.extensions import get_config, get_db
from videobatch.schemas.account import CreditsSchema
from videobatch.schemas.batch import (
    BatchCreatedSchema,
    BatchCreateSchema,
    BatchDetailSchema,
    BatchListQuerySchema,
    BatchListSchema,
    PageQuerySchema,
)
from videobatch.services import cancellation, ledger, listing
from videobatch.services.batches import submit_batch
from videobatch.services.idempotency import read_request_id

bp = Blueprint("enterprise", __name__, url_prefix="/api/enterprise")
# Schemas are built once: building one copies all its fields, a cost no request should repeat.
CREATED_SCHEMA = BatchCreatedSchema()


@functools.cache
def create_schema(max_items: int) -> BatchCreateSchema:
    return BatchCreateSchema(max_items=max_items)


@bp.before_request
def authenticate() -> None:
    """Every enterprise endpoint needs an API key; the caller's account scopes everything."""
    verifier = current_app.extensions["videobatch.api_keys"]
    g.caller = verifier.verify(bearer_or_header(request, "x-api-key"), get_db().transaction)


def caller() -> Caller:
    return g.caller


@bp.post("/video-batch")
def create_batch() -> tuple[dict, int, dict[str, str]]:
    """Create a batch of videos, charged once; a retry with the same request id replays it."""
    g.request_id = read_request_id(
        request.headers.get("x-request-id"), request.headers.get("Idempotency-Key")
    )
    config = get_config()
    summary = submit_batch(
        get_db(),
        current_app.extensions["videobatch.idempotency"],
        caller(),
        g.request_id,
        request.get_data(),  # cached: load_json reads the same bytes if it is needed
        lambda: load_json(create_schema(config.max_items_per_batch)),
        max_attempts=config.max_attempts,
    )
    metrics.record_submission(summary.idempotent_replay)
    body = CREATED_SCHEMA.dump(summary)
    if summary.idempotent_replay:
        return body, 200, {"Idempotent-Replayed": "true"}
    return body, 201, {}


@bp.get("/video-batch/<uuid:batch_id>")
def get_batch(batch_id: uuid.UUID) -> dict:
    """One batch with its task counts and tasks."""
    with get_db().transaction() as session:
        view = listing.get_batch(session, caller().account_id, batch_id)
    return BatchDetailSchema().dump(view)


@bp.get("/video-batch")
def list_batches() -> dict:
    """The account's batches, newest first, paged with ``limit`` and ``starting_after``."""
    query = load_query(BatchListQuerySchema())
    with get_db().transaction() as session:
        page = listing.list_batches(session, caller().account_id, **query)
    return BatchListSchema().dump(page)


@bp.post("/video-batch/<uuid:batch_id>/cancel")
def cancel_batch(batch_id: uuid.UUID) -> dict:
    """Cancel a batch: queued tasks are cancelled and refunded, running ones finish."""
    with get_db().transaction() as session:
        view = cancellation.cancel_batch(session, caller().account_id, batch_id)
    return BatchDetailSchema().dump(view)


@bp.get("/credits")
def get_credits() -> dict:
    """The credit balance and the ledger, newest first, paged."""
    query = load_query(PageQuerySchema())
    with get_db().transaction() as session:
        page = ledger.ledger_page(session, caller().account_id, **query)
    return CreditsSchema().dump(page)
