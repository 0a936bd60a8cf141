from alembic import context
from sqlalchemy import create_engine, pool

from verification.storage.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
            # The audit tables are append-only at the database level too (idempotent).
            from verification.security.audit import install_append_only_guard

            install_append_only_guard(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
