"""Keyset paging, newest first, shared by every list an account reads."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from videobatch.errors import NotFound


def newest_first(
    session: Session,
    query: Select,
    model: Any,
    *,
    account_id: uuid.UUID,
    starting_after: uuid.UUID | None,
    limit: int,
    what: str,
) -> tuple[list[Any], bool]:
    """One page of ``query``'s rows of ``model`` by (created_at, id) descending, and has_more.

    The cursor is a row's position, not an offset, so rows written while a client pages neither
    shift the pages nor appear twice. A cursor that is not the account's answers 404.
    """
    if starting_after is not None:
        cursor = session.execute(
            select(model.created_at, model.id).where(
                model.id == starting_after, model.account_id == account_id
            )
        ).first()
        if cursor is None:
            raise NotFound(f"No {what} {starting_after} to start after")
        query = query.where(
            or_(
                model.created_at < cursor.created_at,
                and_(model.created_at == cursor.created_at, model.id < cursor.id),
            )
        )
    rows = list(
        session.execute(
            query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
        ).scalars()
    )
    return rows[:limit], len(rows) > limit
