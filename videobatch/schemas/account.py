"""The credit balance and its ledger as the account's owner reads them."""

from __future__ import annotations

from marshmallow import Schema, fields

from videobatch.schemas.common import Timestamp


class LedgerEntrySchema(Schema):
    """One change to the balance: a grant, a charge (negative) or a refund."""

    entry_id = fields.UUID(required=True, attribute="id")
    kind = fields.String(required=True, metadata={"enum": ["grant", "charge", "refund"]})
    delta = fields.Integer(required=True, metadata={"description": "Negative for a charge"})
    balance_after = fields.Integer(required=True)
    batch_id = fields.UUID(required=True, allow_none=True)
    task_id = fields.UUID(required=True, allow_none=True)
    created_at = Timestamp(required=True)


class CreditsSchema(Schema):
    """``GET /api/enterprise/credits``: the balance and a page of the ledger, newest first."""

    ok = fields.Constant(True)
    available_credits = fields.Integer(required=True)
    ledger = fields.List(fields.Nested(LedgerEntrySchema), required=True, attribute="entries")
    has_more = fields.Boolean(required=True)
