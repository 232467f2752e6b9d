"""Credits: every change to a balance is one ledger entry in the same transaction.

Invariant: for every account, ``credits_balance == sum(credit_ledger.delta)``. Each entry has a
unique ``entry_key`` (``charge:<batch_id>``, ``refund:<task_id>``), so a charge or refund written
twice fails the whole transaction instead of moving money twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from videobatch import metrics
from videobatch.db import utcnow
from videobatch.errors import InsufficientCredits, NotFound
from videobatch.models import Account, LedgerEntry, LedgerKind
from videobatch.services.paging import newest_first

# Every create runs these two: Core statements built once cost far less CPU per call than ORM
# statements built per call.
_accounts = Account.__table__
CHARGE = (
    update(_accounts)
    .where(
        _accounts.c.id == bindparam("account_id"),
        _accounts.c.credits_balance >= bindparam("amount"),
    )
    .values(credits_balance=_accounts.c.credits_balance - bindparam("amount"))
    .returning(_accounts.c.credits_balance)
)
INSERT_ENTRY = insert(LedgerEntry.__table__)


def _write_entry(
    session: Session,
    *,
    account_id: uuid.UUID,
    delta: int,
    kind: LedgerKind,
    balance_after: int,
    entry_key: str,
    batch_id: uuid.UUID | None = None,
    task_id: uuid.UUID | None = None,
) -> None:
    session.execute(
        INSERT_ENTRY,
        {
            "id": uuid.uuid4(),
            "account_id": account_id,
            "delta": delta,
            "kind": kind.value,
            "balance_after": balance_after,
            "entry_key": entry_key,
            "batch_id": batch_id,
            "task_id": task_id,
            "created_at": utcnow(),
        },
    )


def current_balance(session: Session, account_id: uuid.UUID) -> int:
    """The account's balance as of now."""
    return session.execute(
        select(Account.credits_balance).where(Account.id == account_id)
    ).scalar_one()


def _add_credits(session: Session, account_id: uuid.UUID, amount: int) -> int:
    """Add ``amount`` to the balance; returns the new balance."""
    balance = session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(credits_balance=Account.credits_balance + amount)
        .returning(Account.credits_balance)
    ).scalar_one_or_none()
    if balance is None:
        raise NotFound(f"No account {account_id}")
    return balance


def grant_credits(session: Session, account_id: uuid.UUID, amount: int) -> int:
    """Add ``amount`` credits to an account; returns the new balance."""
    if amount <= 0:
        raise ValueError("a grant must be positive")
    balance = _add_credits(session, account_id, amount)
    _write_entry(
        session,
        account_id=account_id,
        delta=amount,
        kind=LedgerKind.GRANT,
        balance_after=balance,
        entry_key=f"grant:{uuid.uuid4()}",
    )
    return balance


def charge_for_batch(
    session: Session, account_id: uuid.UUID, batch_id: uuid.UUID, amount: int
) -> int:
    """Take ``amount`` credits for a batch, or raise ``InsufficientCredits``; returns the balance.

    The conditional UPDATE is the check: it locks the account row and only matches while the
    balance covers the charge, so concurrent charges can never drive it below zero.
    """
    balance = session.execute(
        CHARGE, {"account_id": account_id, "amount": amount}
    ).scalar_one_or_none()
    if balance is None:
        available = current_balance(session, account_id)
        raise InsufficientCredits(
            f"{amount} credits required, {available} available",
            required_credits=amount,
            available_credits=available,
        )
    _write_entry(
        session,
        account_id=account_id,
        delta=-amount,
        kind=LedgerKind.CHARGE,
        balance_after=balance,
        entry_key=f"charge:{batch_id}",
        batch_id=batch_id,
    )
    metrics.count_after_commit(session, metrics.CREDITS_CHARGED, amount)
    return balance


def refund_task(
    session: Session, account_id: uuid.UUID, batch_id: uuid.UUID, task_id: uuid.UUID, amount: int
) -> int:
    """Give back one task's credits; returns the balance.

    Call it only in the transaction that moves the task to ``failed`` or ``cancelled``: that
    transition happens once, and ``refund:<task_id>`` fences anything that slips past it.
    """
    return _refund(session, account_id, batch_id, [task_id], amount)


def refund_tasks(
    session: Session,
    account_id: uuid.UUID,
    batch_id: uuid.UUID,
    task_ids: list[uuid.UUID],
    amount_each: int,
) -> int | None:
    """``refund_task`` for many tasks at once: one balance update, one entry per task.

    Same rule as ``refund_task``: only in the transaction that ended those tasks. Returns the
    balance, or None when there was nothing to refund.
    """
    if not task_ids:
        return None
    return _refund(session, account_id, batch_id, task_ids, amount_each)


def _refund(
    session: Session,
    account_id: uuid.UUID,
    batch_id: uuid.UUID,
    task_ids: list[uuid.UUID],
    amount_each: int,
) -> int:
    total = amount_each * len(task_ids)
    balance = _add_credits(session, account_id, total)
    opening = balance - total
    session.execute(
        insert(LedgerEntry),
        [
            {
                "id": uuid.uuid4(),
                "account_id": account_id,
                "delta": amount_each,
                "kind": LedgerKind.REFUND.value,
                "balance_after": opening + amount_each * (index + 1),
                "entry_key": f"refund:{task_id}",
                "batch_id": batch_id,
                "task_id": task_id,
            }
            for index, task_id in enumerate(task_ids)
        ],
    )
    metrics.count_after_commit(session, metrics.CREDITS_REFUNDED, total)
    return balance


@dataclass(frozen=True)
class LedgerPage:
    available_credits: int
    entries: list[LedgerEntry]
    has_more: bool


def ledger_page(
    session: Session,
    account_id: uuid.UUID,
    *,
    limit: int,
    starting_after: uuid.UUID | None = None,
) -> LedgerPage:
    """The account's balance and its ledger entries, newest first, after ``starting_after``."""
    entries, has_more = newest_first(
        session,
        select(LedgerEntry).where(LedgerEntry.account_id == account_id),
        LedgerEntry,
        account_id=account_id,
        starting_after=starting_after,
        limit=limit,
        what="ledger entry",
    )
    return LedgerPage(
        available_credits=current_balance(session, account_id), entries=entries, has_more=has_more
    )
