"""Request ids: how a retried create finds the batch it already made.

Redis is the fast gate, PostgreSQL the truth (docs/IDEMPOTENCY.md tells the whole story):

- a lock ``SET NX PX`` on (account, request id) holding a random token lets one request at a
  time do the work; only its owner may release it (compare-and-delete in Lua);
- after the commit, the batch id and the payload's fingerprint are cached for
  ``IDEMPOTENCY_TTL_S`` so replays skip the lookup by request id;
- the database's UNIQUE (account_id, request_id) is the final fence: a lost lock or a lost cache
  entry can cost a wasted transaction, never a second batch or charge.

Every Redis call here degrades to "no answer" when Redis fails; callers fall back on the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from videobatch.errors import InvalidRequestId, RequestIdConflict, RequestIdRequired
from videobatch.schemas.common import canonical_json

log = logging.getLogger(__name__)

REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")

# Delete the lock only if it still holds our token: after a lock expires and another request
# takes it, the first must not free the second's lock. The replay cache entry, when there is one,
# is written in the same call, before the lock goes: a request waiting on the lock then always
# finds the batch, and a create pays one round trip for both.
RELEASE_SCRIPT = """
if ARGV[2] ~= '' then
    redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3])
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def read_request_id(x_request_id: str | None, idempotency_key: str | None) -> str:
    """The request id from ``x-request-id`` and/or ``Idempotency-Key``, validated."""
    candidates = []
    if x_request_id is not None:
        candidates.append(x_request_id)
    if idempotency_key is not None:
        # RFC draft: the Idempotency-Key value is a structured-field string, usually quoted.
        key = idempotency_key
        if len(key) >= 2 and key[0] == key[-1] == '"':
            key = key[1:-1]
        candidates.append(key)
    if not candidates:
        raise RequestIdRequired("Send a request id in x-request-id or Idempotency-Key")
    if len(candidates) == 2 and candidates[0] != candidates[1]:
        raise RequestIdConflict("x-request-id and Idempotency-Key differ; send one, or the same")
    request_id = candidates[0]
    if not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise InvalidRequestId("A request id is 1-255 printable ASCII characters without spaces")
    return request_id


def fingerprint(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated payload."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def body_digest(body: bytes) -> str:
    """sha256 of a request body exactly as sent."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class CachedRequest:
    batch_id: uuid.UUID
    fingerprint: str
    # The digest of the body that created the batch: a retry sending the very same bytes has the
    # same fingerprint, so its replay can skip validating and fingerprinting the payload again.
    body_digest: str | None = None

    def to_json(self) -> str:
        entry = {"batch_id": str(self.batch_id), "fingerprint": self.fingerprint}
        if self.body_digest is not None:
            entry["body"] = self.body_digest
        return json.dumps(entry)


class HeldLock:
    """What ``IdempotencyGate.lock`` hands out: whether we hold the lock, and what to cache."""

    def __init__(self, acquired: bool | None) -> None:
        # True: this request holds it; False: another request does; None: Redis cannot say.
        self.acquired = acquired
        self.entry: CachedRequest | None = None

    def remember_on_release(self, entry: CachedRequest) -> None:
        """Cache ``entry`` for replays when the lock is released (one round trip for both)."""
        self.entry = entry


class IdempotencyGate:
    """The Redis side of request ids: the in-flight lock and the replay cache."""

    def __init__(self, client: redis.Redis, *, ttl_s: int, lock_ttl_ms: int, wait_ms: int) -> None:
        self._redis = client
        self._ttl_s = ttl_s
        self._lock_ttl_ms = lock_ttl_ms
        self.wait_ms = wait_ms
        self._release_script = client.register_script(RELEASE_SCRIPT)  # EVALSHA, loaded once

    @staticmethod
    def _cache_key(account_id: uuid.UUID, request_id: str) -> str:
        return f"vb:idem:{account_id}:{request_id}"

    @staticmethod
    def _lock_key(account_id: uuid.UUID, request_id: str) -> str:
        return f"vb:idem-lock:{account_id}:{request_id}"

    def recall(self, account_id: uuid.UUID, request_id: str) -> CachedRequest | None:
        """The batch this request id made, if Redis remembers it."""
        try:
            raw = self._redis.get(self._cache_key(account_id, request_id))
        except redis.RedisError as error:
            log.warning("idempotency cache unavailable, reading the database: %s", error)
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        return CachedRequest(
            batch_id=uuid.UUID(entry["batch_id"]),
            fingerprint=entry["fingerprint"],
            body_digest=entry.get("body"),
        )

    def remember(self, account_id: uuid.UUID, request_id: str, entry: CachedRequest) -> None:
        """Cache a committed batch for replays; losing this write only costs a DB lookup."""
        try:
            self._redis.set(
                self._cache_key(account_id, request_id), entry.to_json(), ex=self._ttl_s
            )
        except redis.RedisError as error:
            log.warning("could not cache request id (replays will read the database): %s", error)

    @contextmanager
    def lock(self, account_id: uuid.UUID, request_id: str) -> Iterator[HeldLock]:
        """Hold the in-flight lock while the block runs.

        ``acquired`` is True when this request holds it, False when another request does, and
        None when Redis cannot answer (the database's unique constraint then does the fencing
        alone). An entry given to ``remember_on_release`` is cached as the lock is released.
        """
        key = self._lock_key(account_id, request_id)
        token = secrets.token_hex(16)
        try:
            acquired: bool | None = bool(self._redis.set(key, token, nx=True, px=self._lock_ttl_ms))
        except redis.RedisError as error:
            log.warning("idempotency lock unavailable, relying on the database: %s", error)
            acquired = None
        held = HeldLock(acquired)
        try:
            yield held
        finally:
            if acquired:
                self._release(key, token, self._cache_key(account_id, request_id), held.entry)
            elif held.entry is not None:
                self.remember(account_id, request_id, held.entry)

    def _release(self, key: str, token: str, cache_key: str, entry: CachedRequest | None) -> None:
        value = entry.to_json() if entry is not None else ""
        try:
            self._release_script(keys=[key, cache_key], args=[token, value, self._ttl_s])
        except redis.RedisError as error:
            # The lock expires on its own after IDEMPOTENCY_LOCK_TTL_MS, and replays read the
            # database until the entry is cached again.
            log.warning("could not release idempotency lock %s: %s", key, error)

    def wait_for_other(
        self, account_id: uuid.UUID, request_id: str, deadline: float
    ) -> CachedRequest | None:
        """Wait until ``deadline`` (monotonic) for the request holding the lock to finish.

        Returns its cached batch if it committed one; None when the lock was released without a
        batch (the caller may then try itself) or the wait ran out.
        """
        delay = 0.01
        lock_key = self._lock_key(account_id, request_id)
        while True:
            cached = self.recall(account_id, request_id)
            if cached is not None:
                return cached
            try:
                if not self._redis.exists(lock_key):
                    return None
            except redis.RedisError:
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 0.1)
