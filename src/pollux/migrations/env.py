"""Alembic's environment: always run by `pollux.migrations.upgrade` on a connection it holds (no alembic.ini)."""

from alembic import context

from pollux.migrations import target_metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata(), transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
