"""Alembic environment of the registry's schema.

At runtime `registry.db.init_db` builds the Alembic `Config` in code and hands over an open
connection in `config.attributes["connection"]`, already inside the transaction that holds the
migration lock; everything then runs in that one transaction (both SQLite and PostgreSQL have
transactional DDL), so a failed upgrade leaves the previous schema intact. For a developer
running the `alembic` command (to write the next revision), the database comes from
`-x url=...` or `$AGENTFACTORY_DATABASE_URL`. There is no offline (SQL script) mode: the
search objects differ per dialect and are created by the revisions from the live connection.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from models import records as _model_records  # noqa: F401  (model usage shares this schema)
from registry.db import include_object, make_engine
from runs import models as _runs_models  # noqa: F401  (the runs tables share this schema)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        include_object=include_object,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise SystemExit("the registry's migrations run online only (see registry/db.py)")
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "AGENTFACTORY_DATABASE_URL"
    )
    if not url:
        raise SystemExit("give the database: alembic -x url=... or $AGENTFACTORY_DATABASE_URL")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


_main()
