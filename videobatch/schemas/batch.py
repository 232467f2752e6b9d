"""Batch requests and the shapes batches are answered in."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from videobatch.schemas.common import NonBlankString, StrictInteger, Timestamp

ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")
MAX_METADATA_KEYS = 16
MAX_METADATA_VALUE = 500


class BatchItemSchema(Schema):
    """One video to generate."""

    prompt = NonBlankString(required=True, validate=validate.Length(min=1, max=4000))
    duration_seconds = StrictInteger(load_default=5, validate=validate.Range(min=1, max=60))
    aspect_ratio = fields.String(load_default="16:9", validate=validate.OneOf(ASPECT_RATIOS))
    style = fields.String(validate=validate.Length(max=64))
    negative_prompt = fields.String(validate=validate.Length(max=2000))
    seed = StrictInteger(validate=validate.Range(min=0, max=2**31 - 1))
    client_ref = fields.String(validate=validate.Length(max=128))


class BatchCreateSchema(Schema):
    """The body of ``POST /api/enterprise/video-batch``."""

    items = fields.List(fields.Nested(BatchItemSchema), required=True)
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.String(),
        load_default=dict,
    )

    def __init__(self, *, max_items: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_items = max_items

    def load(self, data: Any, **kwargs: Any) -> Any:
        # Plainly valid bodies, nearly all of them, skip marshmallow's per-field work; the fast
        # path returns exactly what marshmallow would, and leaves everything else to it.
        from videobatch.schemas.batch_fast_path import load_plainly_valid

        if not kwargs:
            loaded = load_plainly_valid(data, self.max_items)
            if loaded is not None:
                return loaded
        return super().load(data, **kwargs)

    @validates("items")
    def _items_within_limits(self, value: list[dict[str, Any]], **_: Any) -> None:
        if not 1 <= len(value) <= self.max_items:
            raise ValidationError(f"Must hold between 1 and {self.max_items} items.")

    @validates("metadata")
    def _metadata_within_limits(self, value: dict[str, str], **_: Any) -> None:
        if len(value) > MAX_METADATA_KEYS:
            raise ValidationError(f"At most {MAX_METADATA_KEYS} keys.")
        long_keys = [key for key, item in value.items() if len(item) > MAX_METADATA_VALUE]
        if long_keys:
            raise ValidationError(
                f"Values must be at most {MAX_METADATA_VALUE} characters: {', '.join(long_keys)}."
            )


class BatchSchema(Schema):
    """A batch as every endpoint answers it."""

    ok = fields.Constant(True)
    batch_id = fields.UUID(required=True)
    request_id = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "enum": [
                "queued",
                "processing",
                "completed",
                "failed",
                "partially_completed",
                "cancelled",
            ]
        },
    )
    total_count = fields.Integer(required=True)
    cost_per_video = fields.Integer(required=True)
    required_credits = fields.Integer(required=True)
    available_credits = fields.Integer(
        required=True, metadata={"description": "The account's balance now"}
    )
    created_at = Timestamp(required=True)


class BatchCreatedSchema(BatchSchema):
    """The answer to a create: the batch, and whether it was an idempotent replay."""

    idempotent_replay = fields.Boolean(required=True)


# -- reading batches back (SPEC 4.4-4.6) -------------------------------------------------------

TASK_STATUSES = ("queued", "processing", "completed", "failed", "cancelled")
BATCH_STATUSES = (
    "queued",
    "processing",
    "completed",
    "failed",
    "partially_completed",
    "cancelled",
)


class TaskCountsSchema(Schema):
    """How many of a batch's tasks are in each status."""

    queued = fields.Integer(required=True)
    processing = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)


class TaskErrorSchema(Schema):
    """Why a task failed."""

    code = fields.String(required=True, allow_none=True)
    message = fields.String(required=True, allow_none=True)


class TaskSchema(Schema):
    """One video of a batch."""

    task_id = fields.UUID(required=True)
    position = fields.Integer(required=True)
    prompt = fields.String(required=True)
    client_ref = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(TASK_STATUSES)})
    attempts = fields.Integer(required=True)
    video_url = fields.String(required=True, allow_none=True)
    error = fields.Nested(TaskErrorSchema, required=True, allow_none=True)
    started_at = Timestamp(required=True, allow_none=True)
    finished_at = Timestamp(required=True, allow_none=True)


class BatchStateSchema(BatchSchema):
    """A batch with its task counts: what the list and the detail share."""

    counts = fields.Nested(TaskCountsSchema, required=True)
    finished_at = Timestamp(required=True, allow_none=True)
    cancel_requested_at = Timestamp(required=True, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class BatchDetailSchema(BatchStateSchema):
    """``GET /api/enterprise/video-batch/<batch_id>`` and the answer to a cancel."""

    tasks = fields.List(fields.Nested(TaskSchema), required=True)


class BatchListItemSchema(BatchStateSchema):
    """A batch in a list page (no tasks)."""

    class Meta:
        exclude = ("ok",)


class BatchListSchema(Schema):
    """A page of batches, newest first."""

    ok = fields.Constant(True)
    data = fields.List(fields.Nested(BatchListItemSchema), required=True)
    has_more = fields.Boolean(required=True)


class PageQuerySchema(Schema):
    """``limit`` and ``starting_after``: how every list is paged."""

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    starting_after = fields.UUID(
        metadata={"description": "The id of the last item of the previous page"}
    )


class BatchListQuerySchema(PageQuerySchema):
    """The query string of ``GET /api/enterprise/video-batch``."""

    status = fields.String(validate=validate.OneOf(BATCH_STATUSES))
