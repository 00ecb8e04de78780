"""The Debian package (`scripts/package`, cargo-deb), built from the debug binary the suite
already has (`--debug`: no release build in CI). Inspected with dpkg-deb: files and modes,
conffiles, control fields, maintainer scripts, the man pages render. Then, as root, really
installed on this machine with `dpkg -i`: the user, paths and modes, `rampart --version`, the
installed unit verifies; an edited config survives the upgrade to a higher version; `dpkg -r`
keeps config and mail, purge removes the config and keeps the mail (see contrib/debian/postrm).

Other tests run at the same time and use target/debug/rampart, never /usr/bin/rampart; the
install part holds a machine-wide lock, so two suites (two worktrees) never install at once."""

import fcntl
import grp
import os
import pathlib
import pwd
import shutil
import stat
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CARGO_DEB = shutil.which("cargo-deb") or str(pathlib.Path.home() / ".cargo" / "bin" / "cargo-deb")
LOCK = "/run/lock/rampart-package-test.lock"
ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def run(*cmd, check=True, **kw):
    kw.setdefault("env", ENV)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    """Two builds of the package: 0.1.0-1 and the 'upgrade' 0.1.0-2."""
    if not os.access(CARGO_DEB, os.X_OK):
        pytest.skip("needs cargo-deb (scripts/setup installs it)")
    out = tmp_path_factory.mktemp("debs")
    built = []
    for version in ("0.1.0-1", "0.1.0-2"):
        run(str(ROOT / "scripts" / "package"), "--debug", "--deb-version", version, "--output", f"{out}/", cwd=ROOT)
        deb = [p for p in out.glob("rampart_*.deb") if p not in built]
        assert len(deb) == 1, list(out.iterdir())
        built.append(deb[0])
    return built


def field(deb, name):
    return run("dpkg-deb", "-f", str(deb), name).stdout.strip()


def test_the_package_holds_what_it_should(debs, tmp_path):
    deb = debs[0]
    assert field(deb, "Package") == "rampart" and field(deb, "Version") == "0.1.0-1"
    assert field(deb, "Section") == "mail" and field(deb, "Architecture") == "amd64"
    depends = field(deb, "Depends")
    for dep in ("libc6", "libsodium23", "adduser", "openssl"):
        assert dep in depends, depends
    assert field(debs[1], "Version") == "0.1.0-2"

    listing = {}
    for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        listing[path.lstrip(".")] = (mode, owner)
    assert listing["/usr/bin/rampart"] == ("-rwxr-xr-x", "0/0")
    assert listing["/etc/rampart/rampart.toml"] == ("-rw-r-----", "0/0")  # group: postinst's statoverride
    units = [p for p in listing if p.endswith("/systemd/system/rampart.service")]
    assert units, sorted(listing)
    assert "/usr/share/man/man1/rampart.1.gz" in listing and "/usr/share/man/man1/rampart-user-add.1.gz" in listing
    assert not [p for p in listing if p.startswith("/var/lib/rampart/")], "the data directory is made by postinst, never shipped"

    # Everything under /etc is a conffile: dpkg keeps the admin's edits.
    control = tmp_path / "control"
    run("dpkg-deb", "-e", str(deb), str(control))
    assert (control / "conffiles").read_text().split() == ["/etc/rampart/rampart.toml"]
    postinst = (control / "postinst").read_text()
    assert "adduser --system" in postinst and "deb-systemd-helper enable rampart.service" in postinst
    assert "deb-systemd-invoke start" not in postinst, "enabled, not started, on install"
    assert "deb-systemd-invoke try-restart rampart.service" in postinst, "an upgrade restarts a running server"

    files = tmp_path / "files"
    run("dpkg-deb", "-x", str(deb), str(files))
    config = (files / "etc/rampart/rampart.toml").read_text()
    assert 'data_dir = "/var/lib/rampart"' in config.splitlines() and 'hostname = "localhost"' in config.splitlines()
    assert run(str(files / "usr/bin/rampart"), "--version").stdout.strip() == "rampart 0.1.0"
    # The man pages render without groff warnings.
    for page in ("rampart.1.gz", "rampart-user-add.1.gz", "rampart-audit.1.gz"):
        text = run("man", "-l", str(files / "usr/share/man/man1" / page), cwd=tmp_path, env={**ENV, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""}).stdout
        assert "NAME" in text and "SYNOPSIS" in text, text
        source = subprocess.run(["zcat", str(files / "usr/share/man/man1" / page)], capture_output=True, check=True).stdout
        warn = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=source, capture_output=True)
        assert warn.returncode == 0 and not warn.stderr, warn.stderr
    top = run("man", "-l", str(files / "usr/share/man/man1/rampart.1.gz"), env={**ENV, "MANWIDTH": "100"}).stdout
    assert "rampart-serve(1)" in top and "--config" in top


def installed_version():
    r = run("dpkg-query", "-W", "-f", "${Status} ${Version}", "rampart", check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def mode_owner(path):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


def test_install_upgrade_remove_purge(debs):
    if os.geteuid() != 0:
        pytest.skip("installs the package on this machine: needs root (CI runs as root)")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() not in (None, ""):
            pytest.skip(f"a rampart package is installed already ({installed_version()}); dpkg --purge rampart first")
        if os.path.exists("/var/lib/rampart") or os.path.exists("/etc/rampart"):
            pytest.skip("/var/lib/rampart or /etc/rampart exists: not touching an existing installation")
        try:
            install_upgrade_remove_purge(debs)
        finally:
            if installed_version() not in (None, ""):
                run("dpkg", "--purge", "rampart", check=False)
            shutil.rmtree("/var/lib/rampart", ignore_errors=True)
            shutil.rmtree("/etc/rampart", ignore_errors=True)


def install_upgrade_remove_purge(debs):
    r = run("dpkg", "-i", str(debs[0]))
    assert "set server.hostname in /etc/rampart/rampart.toml" in r.stdout
    assert installed_version() == "install ok installed 0.1.0-1"
    user = pwd.getpwnam("rampart")
    assert user.pw_uid < 1000 and user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user
    assert grp.getgrgid(user.pw_gid).gr_name == "rampart"
    assert mode_owner("/var/lib/rampart") == (0o750, "rampart", "rampart")
    assert mode_owner("/etc/rampart/rampart.toml") == (0o640, "root", "rampart")
    assert mode_owner("/etc/rampart/tls") == (0o750, "root", "rampart")
    assert mode_owner("/etc/rampart/tls/key.pem") == (0o640, "root", "rampart")
    assert mode_owner("/usr/bin/rampart") == (0o755, "root", "root")
    assert run("/usr/bin/rampart", "--version").stdout.strip() == "rampart 0.1.0"
    assert run("/usr/bin/rampart", "config", "check", "-c", "/etc/rampart/rampart.toml").returncode == 0
    unit = pathlib.Path(next(p for p in run("dpkg", "-L", "rampart").stdout.split() if p.endswith("/rampart.service")))
    assert unit.is_file(), unit
    if shutil.which("systemd-analyze"):
        verify = run("systemd-analyze", "verify", str(unit), check=False)
        assert verify.returncode == 0, verify.stderr
    # Enabled (deb-systemd-helper works without a running systemd), not started.
    assert os.path.islink("/etc/systemd/system/multi-user.target.wants/rampart.service")
    assert os.path.isfile("/usr/share/man/man1/rampart.1.gz")

    # The admin's edit and data, made as the service user, as the postinst note says.
    config = pathlib.Path("/etc/rampart/rampart.toml")
    config.write_text(config.read_text().replace('hostname = "localhost"', 'hostname = "mx.example.test"', 1))
    run("runuser", "-u", "rampart", "--", "/usr/bin/rampart", "domain", "add", "example.test", "-c", str(config))

    run("dpkg", "-i", str(debs[1]))
    assert installed_version() == "install ok installed 0.1.0-2"
    assert 'hostname = "mx.example.test"' in config.read_text(), "the upgrade kept the edit"
    assert not list(pathlib.Path("/etc/rampart").glob("rampart.toml.dpkg-*"))
    assert mode_owner(config) == (0o640, "root", "rampart")
    domains = run("runuser", "-u", "rampart", "--", "/usr/bin/rampart", "domain", "list", "-c", str(config)).stdout
    assert "example.test" in domains

    run("dpkg", "-r", "rampart")
    assert installed_version() == "deinstall ok config-files 0.1.0-2"
    assert not os.path.exists("/usr/bin/rampart")
    assert 'hostname = "mx.example.test"' in config.read_text(), "remove keeps the config"
    assert os.path.exists("/var/lib/rampart/rampart.db"), "remove keeps the mail"

    r = run("dpkg", "--purge", "rampart")
    assert installed_version() in (None, "")
    assert not os.path.exists("/etc/rampart")
    assert not os.path.lexists("/etc/systemd/system/multi-user.target.wants/rampart.service")
    assert os.path.exists("/var/lib/rampart/rampart.db"), "purge keeps the mail (contrib/debian/postrm says why)"
    assert "kept" in r.stdout
    pwd.getpwnam("rampart")  # and the user
