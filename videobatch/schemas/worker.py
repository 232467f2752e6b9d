"""The internal worker API: what workers send and what they are answered."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from videobatch.schemas.common import NonBlankString, StrictInteger, Timestamp

LEASE_SECONDS = validate.Range(min=1, max=3600)
ERROR_CODE = validate.Regexp(r"^[a-z0-9][a-z0-9_.-]{0,63}$", error="Use 1-64 of a-z 0-9 _ . -")


class ClaimRequestSchema(Schema):
    """The body of ``POST /api/internal/tasks/claim``."""

    worker_id = NonBlankString(load_default="worker", validate=validate.Length(min=1, max=128))
    max_tasks = StrictInteger(load_default=1, validate=validate.Range(min=1, max=100))
    lease_seconds = StrictInteger(load_default=120, validate=LEASE_SECONDS)


class HeartbeatRequestSchema(Schema):
    """The body of ``POST /api/internal/tasks/<task_id>/heartbeat``."""

    lease_token = fields.String(required=True, validate=validate.Length(min=1, max=64))
    lease_seconds = StrictInteger(load_default=120, validate=LEASE_SECONDS)


class CompleteRequestSchema(Schema):
    """The body of ``POST /api/internal/tasks/<task_id>/complete``."""

    lease_token = fields.String(required=True, validate=validate.Length(min=1, max=64))
    video_url = fields.String(
        required=True,
        validate=[
            validate.Length(max=2048),
            validate.URL(schemes={"http", "https", "s3", "gs"}, require_tld=False),
        ],
    )


class FailRequestSchema(Schema):
    """The body of ``POST /api/internal/tasks/<task_id>/fail``."""

    lease_token = fields.String(required=True, validate=validate.Length(min=1, max=64))
    error_code = fields.String(required=True, validate=ERROR_CODE)
    error_message = fields.String(load_default="", validate=validate.Length(max=2000))
    retryable = fields.Boolean(load_default=True)


class RunOnceRequestSchema(Schema):
    """The body of ``POST /api/internal/worker/run-once`` (may be empty)."""

    max_tasks = StrictInteger(load_default=10, validate=validate.Range(min=1, max=100))


class ClaimedTaskSchema(Schema):
    task_id = fields.UUID()
    batch_id = fields.UUID()
    position = fields.Integer()
    prompt = fields.String()
    params = fields.Dict()
    attempt = fields.Integer()
    max_attempts = fields.Integer()
    lease_token = fields.String()
    lease_expires_at = Timestamp()


class ClaimResponseSchema(Schema):
    ok = fields.Constant(True)
    tasks = fields.List(fields.Nested(ClaimedTaskSchema))


class HeartbeatResponseSchema(Schema):
    ok = fields.Constant(True)
    task_id = fields.UUID()
    lease_expires_at = Timestamp()
    cancel_requested = fields.Boolean()


class TaskOutcomeSchema(Schema):
    """A task after a complete or fail report."""

    ok = fields.Constant(True)
    task_id = fields.UUID()
    batch_id = fields.UUID()
    status = fields.String()
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    retry_at = Timestamp(attribute="run_after", allow_none=True)
    video_url = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    refunded = fields.Boolean()
    batch_status = fields.String()
    replay = fields.Boolean()


class RunOnceTaskSchema(Schema):
    task_id = fields.UUID()
    batch_id = fields.UUID()
    attempt = fields.Integer()
    outcome = fields.String()
    status = fields.String(allow_none=True)
    video_url = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)


class RunOnceResponseSchema(Schema):
    ok = fields.Constant(True)
    provider = fields.String()
    claimed = fields.Integer()
    completed = fields.Integer()
    requeued = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
    lease_lost = fields.Integer()
    tasks = fields.List(fields.Nested(RunOnceTaskSchema))
