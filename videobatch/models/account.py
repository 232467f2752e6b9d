"""Accounts (who pays) and their API keys (how they authenticate)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from videobatch.db import Base, new_id, utcnow


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("credits_balance >= 0", name="credits_balance_non_negative"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    credits_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_per_video: Mapped[int] = mapped_column(default=10)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored only as a peppered HMAC; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
