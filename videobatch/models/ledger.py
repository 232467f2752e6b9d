"""The append-only credit ledger: every change to a balance, once."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from videobatch.db import Base, new_id, utcnow


class LedgerKind(enum.StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    REFUND = "refund"


class LedgerEntry(Base):
    __tablename__ = "credit_ledger"
    __table_args__ = (Index("ix_credit_ledger_account_created", "account_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    delta: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batch_jobs.id"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("video_tasks.id"))
    balance_after: Mapped[int] = mapped_column(BigInteger)
    # charge:<batch_id>, refund:<task_id>, grant:<uuid>: a second write of the same entry fails.
    entry_key: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
