"""API keys and the worker secret: how callers prove who they are."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import Request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from videobatch.db import utcnow
from videobatch.errors import (
    ApiKeyRequired,
    InternalApiDisabled,
    InvalidApiKey,
    InvalidWorkerSecret,
)
from videobatch.models import ApiKey

KEY_PREFIX = "vb_"
PREFIX_LENGTH = 12  # characters of the random part kept in clear to find the row
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once, never stored
    prefix: str
    key_hash: str


@dataclass(frozen=True)
class Caller:
    """The authenticated account behind a request."""

    account_id: uuid.UUID
    key_id: uuid.UUID


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def issue_key(pepper: str) -> IssuedKey:
    """A new random API key, with what the database keeps of it."""
    random_part = secrets.token_urlsafe(30)  # 40 url-safe characters
    key = KEY_PREFIX + random_part
    return IssuedKey(key=key, prefix=random_part[:PREFIX_LENGTH], key_hash=hash_key(key, pepper))


def bearer_or_header(request: Request, header: str) -> str | None:
    """The credential from ``header`` or, failing that, ``Authorization: Bearer``."""
    value = request.headers.get(header)
    if value:
        return value.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


class ApiKeyVerifier:
    """Checks API keys against the database, remembering good ones for a few seconds.

    The cache is keyed by the key's HMAC, never the key, and holds an entry for at most
    ``ttl`` seconds, so a revoked key stops working in every process within that time.
    """

    def __init__(self, pepper: str, ttl: float) -> None:
        self._pepper = pepper
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Caller]] = {}
        self._lock = threading.Lock()

    def verify(self, key: str | None, session_factory) -> Caller:
        if not key:
            raise ApiKeyRequired("Send your API key in x-api-key or Authorization: Bearer")
        if not key.startswith(KEY_PREFIX) or len(key) < len(KEY_PREFIX) + 32 or len(key) > 200:
            raise InvalidApiKey("The API key is unknown or revoked")
        digest = hash_key(key, self._pepper)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with session_factory() as session:
            caller = self._lookup(session, key[len(KEY_PREFIX) :][:PREFIX_LENGTH], digest)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, caller)
        return caller

    def forget_all(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def _lookup(session: Session, prefix: str, digest: str) -> Caller:
        row = session.execute(
            select(
                ApiKey.id,
                ApiKey.account_id,
                ApiKey.key_hash,
                ApiKey.revoked_at,
                ApiKey.last_used_at,
            ).where(ApiKey.prefix == prefix)
        ).first()
        # Compare even when no row matched so that timing does not tell a prefix exists.
        stored = row.key_hash if row is not None else "0" * 64
        if not hmac.compare_digest(stored, digest) or row is None or row.revoked_at is not None:
            raise InvalidApiKey("The API key is unknown or revoked")
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        return Caller(account_id=row.account_id, key_id=row.id)


def check_worker_secret(presented: str | None, configured: str) -> None:
    """Raise unless ``presented`` is the configured internal secret (constant time)."""
    if not configured:
        raise InternalApiDisabled(
            "INTERNAL_WORKER_SECRET is not configured; the internal API is off"
        )
    if not presented or not hmac.compare_digest(presented.encode(), configured.encode()):
        raise InvalidWorkerSecret("Missing or wrong x-internal-secret")
