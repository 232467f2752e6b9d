"""Accounts and their API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from videobatch.auth import issue_key
from videobatch.db import utcnow
from videobatch.errors import NotFound
from videobatch.models import Account, ApiKey
from videobatch.services import ledger


@dataclass(frozen=True)
class NewAccount:
    account_id: uuid.UUID
    key_id: uuid.UUID
    api_key: str
    available_credits: int


def create_account(
    session: Session, name: str, *, credits: int, cost_per_video: int, pepper: str
) -> NewAccount:
    """An account with one API key and, if ``credits`` > 0, an opening grant."""
    if cost_per_video < 1:
        raise ValueError("cost per video must be at least 1")
    account = Account(
        id=uuid.uuid4(),
        name=name,
        credits_balance=0,
        cost_per_video=cost_per_video,
        created_at=utcnow(),
    )
    session.add(account)
    session.flush()
    balance = ledger.grant_credits(session, account.id, credits) if credits > 0 else 0
    key_id, api_key = create_key(session, account.id, pepper=pepper)
    return NewAccount(
        account_id=account.id, key_id=key_id, api_key=api_key, available_credits=balance
    )


def create_key(session: Session, account_id: uuid.UUID, *, pepper: str) -> tuple[uuid.UUID, str]:
    """A new API key for the account; the key itself is returned once and never stored."""
    if session.get(Account, account_id) is None:
        raise NotFound(f"No account {account_id}")
    issued = issue_key(pepper)
    key = ApiKey(
        id=uuid.uuid4(),
        account_id=account_id,
        prefix=issued.prefix,
        key_hash=issued.key_hash,
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    return key.id, issued.key


def revoke_key(session: Session, key_id: uuid.UUID) -> None:
    """Revoke a key (idempotent); processes stop accepting it within API_KEY_CACHE_TTL_S."""
    updated = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, utcnow()))
    ).rowcount
    if not updated:
        raise NotFound(f"No API key {key_id}")


def count_accounts(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Account)).scalar_one()
