"""The process-wide resources: the database engine and the Redis client.

They are created unbound here and bound to a configuration by ``create_app``; nothing else
opens connections of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from flask import current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from videobatch.config import Config


class Database:
    """The engine and a session factory; ``transaction()`` is the one way to write."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._readers: sessionmaker[Session] | None = None

    def init(self, config: Config) -> None:
        self.engine = make_engine(config.database_url, config)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = self._sessions
        if self.is_postgres:
            # A single SELECT sees committed data on its own; autocommit spares it the BEGIN
            # and COMMIT round trips.
            self._readers = sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )

    @property
    def is_postgres(self) -> bool:
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        if self._sessions is None:
            raise RuntimeError("database not initialised; create_app() binds it")
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for a read that needs no transaction; it must not write."""
        if self._readers is None:
            raise RuntimeError("database not initialised; create_app() binds it")
        with self._readers() as session:
            yield session

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def make_engine(url: str, config: Config | None = None) -> Engine:
    """An engine tuned for the backend: pooled PostgreSQL, or a WAL-mode SQLite file."""
    config = config or Config()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,  # error messages go to logs; bound values hold prompts
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    return create_engine(
        url,
        pool_size=config.db_pool_size,
        max_overflow=config.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=config.db_pool_timeout_s,
        hide_parameters=True,  # error messages go to logs; bound values hold prompts
        # A stuck statement fails in bounded time instead of holding a web thread forever.
        connect_args={
            "connect_timeout": config.db_connect_timeout_s,
            "options": f"-c statement_timeout={config.db_statement_timeout_ms}",
        },
    )


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    # pysqlite defers BEGIN and upgrades read locks lazily, which turns concurrent writers into
    # "database is locked" errors. Taking the write lock at BEGIN makes SQLite's single writer a
    # queue instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class RedisHolder:
    """The Redis client: a real server from ``REDIS_URL``, or an in-process fake without one."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None

    def init(self, config: Config) -> None:
        if config.redis_url:
            self.client = redis.Redis.from_url(
                config.redis_url,
                # Redis is the fast path, never the truth: a slow Redis must not hold a request.
                socket_timeout=config.redis_socket_timeout_s,
                socket_connect_timeout=config.redis_socket_timeout_s,
                health_check_interval=30,
            )
        else:
            import fakeredis

            self.client = fakeredis.FakeRedis()

    def get(self) -> redis.Redis:
        if self.client is None:
            raise RuntimeError("redis not initialised; create_app() binds it")
        return self.client


def get_db() -> Database:
    """The current app's database."""
    return current_app.extensions["videobatch.db"]


def get_redis() -> redis.Redis:
    """The current app's Redis client."""
    return current_app.extensions["videobatch.redis"].get()


def get_config() -> Config:
    """The current app's configuration."""
    return current_app.extensions["videobatch.config"]
