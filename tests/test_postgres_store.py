"""The PostgreSQL store's test cluster (issue 18): a fresh database per test. The store itself is
tested end to end in test_cluster.py (several nodes) and test_postgres_migrate.py."""

import pytest

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
