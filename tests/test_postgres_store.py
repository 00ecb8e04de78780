"""The PostgreSQL store (issue 18), as far as this build has it: the test cluster works, and a
config that asks for the backend is refused — by `config check`, by `serve` and by store commands —
with a message that says the backend is not complete, never a server that half works."""

import subprocess

import pytest

from conftest import BIN, Rampart
from postgres import Postgres


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.stop()


def test_each_test_gets_a_fresh_database(postgres):
    a, b = postgres.database(), postgres.database()
    assert a != b
    name = a.rsplit("/", 1)[1]
    assert postgres.psql(name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    assert postgres.psql(name, "SHOW fsync") == "off"


def test_the_postgres_backend_is_refused_until_complete(tmp_path, postgres):
    r = Rampart(tmp_path)
    url = postgres.database()
    r.set_config("store", "backend", '"postgres"')
    r.set_config("store", "url", f'"{url}"')
    for args in (["config", "check"], ["user", "list"], ["serve"]):
        p = subprocess.run([BIN, *args, "--config", str(r.config)], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, (args, p.stdout, p.stderr)
        assert "store.backend" in p.stderr and "not complete in this build" in p.stderr, (args, p.stderr)
    # Nothing was written to the database: the refusal comes before any connection.
    name = url.rsplit("/", 1)[1]
    assert postgres.psql(name, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
