"""A throwaway PostgreSQL for end-to-end tests (the PostgreSQL store, issue 18), the Python twin of
crates/rampart-store/src/postgres/testdb.rs: one cluster per test process (`initdb` into a temp
dir, `pg_ctl start` on a free loopback port, fsync off), a fresh database per test.

PostgreSQL refuses to run as root: when the tests run as root the directory is given to the
`postgres` user of Debian's package and every PostgreSQL command runs through
`runuser -u postgres --`. `stop()` shuts the cluster down; should the test process die first, a
watchdog in its own session stops the server and removes the directory.
"""

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

from conftest import free_port


def bin_dir():
    if os.environ.get("RAMPART_PG_BIN"):
        return os.environ["RAMPART_PG_BIN"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise AssertionError("no /usr/lib/postgresql/*/bin/initdb: install the postgresql package")
    return os.path.dirname(found[-1])


class Postgres:
    def __init__(self, durable=False):
        """`durable`: fsync and full-page writes on, as in production (the benchmark); tests
        run without them."""
        self.bin = bin_dir()
        self.durable = durable
        self.as_postgres = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="rampart-pg-")
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.port = None
        self._names = itertools.count()

    def _run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bin, tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=60)

    def start(self):
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        for _ in range(5):
            self.port = free_port()
            options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
            if not self.durable:
                options += " -c fsync=off -c full_page_writes=off"
            r = self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-o", options, "start",
                          check=False)
            if r.returncode == 0:
                self._watchdog()
                return self
        raise AssertionError(f"pg_ctl start failed:\n{open(os.path.join(self.dir, 'log')).read()}")

    def _watchdog(self):
        script = """
            while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
            pm=$(head -n 1 "$2/postmaster.pid" 2>/dev/null)
            if [ -n "$pm" ]; then
                kill -QUIT "$pm" 2>/dev/null
                while kill -0 "$pm" 2>/dev/null; do sleep 0.05; done
            fi
            rm -rf "$3"
        """
        subprocess.Popen(["setsid", "sh", "-c", script, "watchdog", str(os.getpid()), self.data, self.dir],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, database, sql):
        """Runs `sql` with psql; returns its unaligned output."""
        r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", database, "-c", sql], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def database(self):
        """The URL of a new, empty database."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
