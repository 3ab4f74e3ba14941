"""Column builders the migrations share: frozen history, like the revisions that call them.

A released revision runs these functions every time a database is upgraded through it, so what
they build must never change: never edit one once a revision that uses it is released; a later
revision that needs another shape writes another function. They import SQLAlchemy and Alembic
only, never the live models (envrouter.db.tables), whose changes must not reach old revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def key() -> sa.Column:
    """The table's own integer key, `id`."""
    return sa.Column("id", sa.Integer, primary_key=True)


def owner(
    column: str, table: str, constraint: str, *, nullable: bool = False, primary_key: bool = False
) -> sa.Column:
    """A reference to `table`.id by the foreign key named `constraint`: the row belongs to that
    one and goes with it (ON DELETE CASCADE)."""
    return sa.Column(
        column,
        sa.Integer,
        sa.ForeignKey(f"{table}.id", ondelete="CASCADE", name=constraint),
        nullable=nullable,
        primary_key=primary_key,
    )


def create_owned_table(
    name: str, column: str, table: str, constraint: str, *columns: sa.Column | sa.Constraint
) -> None:
    """A table of rows that belong to a row of `table`: its key, the reference `column` (see
    `owner`), then `columns`; and the index `ix_<name>_<column>` that finds a row's own."""
    op.create_table(name, key(), owner(column, table, constraint), *columns)
    op.create_index(f"ix_{name}_{column}", name, [column])
