"""Schema migrations (Alembic), run by `cracker migrate` and at `cracker serve` start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cracker.domain.errors import ServiceUnavailable
from cracker.store.engines import is_sqlite, normalise_url

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # ConfigParser interpolation would eat a '%' in a password.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema. Blocking: call it outside the event loop.

    Raises ``ValueError`` for a URL Cracker cannot use and ``ServiceUnavailable`` for a database it
    cannot open or reach, with the URL (password hidden) and the driver's reason in one line.
    """
    config = alembic_config(url)  # ValueError for an unsupported URL, before touching anything
    try:
        if is_sqlite(url):
            database = make_url(url).database
            if database:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        command.upgrade(config, "head")
    except (DBAPIError, OSError, sqlite3.Error) as exc:
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        shown = make_url(url).render_as_string(hide_password=True)
        detail = " ".join(str(reason).split()) or type(reason).__name__
        raise ServiceUnavailable(f"cannot open the database {shown}: {detail}") from exc
