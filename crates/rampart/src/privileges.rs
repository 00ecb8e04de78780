//! Least privilege for `rampart serve` started as root: it binds its ports and opens its files
//! as root, gives the data directory to `[server] user`, then becomes that user and group with
//! no capabilities left. `PR_SET_NO_NEW_PRIVS` is set before any thread exists, so every thread
//! has it: no exec can ever gain privileges again. Under systemd (contrib/systemd) the unit
//! starts the server as the user already, and all of this is a no-op.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, bail};
use tracing::{info, warn};

/// Whom a root-started server becomes.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Before the runtime starts (one thread): sets no-new-privileges for this and every later
/// thread, and says whom to become — `None` when not root, or when `server.allow_root` keeps
/// root.
pub fn prepare(server: &rampart_config::Server) -> anyhow::Result<Option<Target>> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS only sets a flag on the calling thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!("prctl(PR_SET_NO_NEW_PRIVS): {}", std::io::Error::last_os_error());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    if server.allow_root {
        warn!(event = "running_as_root", reason = "server.allow_root");
        return Ok(None);
    }
    let (uid, user_gid) = lookup_user(&server.user)?.with_context(|| {
        format!(
            "server.user: no user `{}` to run as; create it (adduser --system --group {}) or set server.allow_root = true",
            server.user, server.user
        )
    })?;
    let gid = if server.group.is_empty() {
        user_gid
    } else {
        lookup_group(&server.group)?.with_context(|| format!("server.group: no group `{}`", server.group))?
    };
    if uid == 0 {
        bail!("server.user: `{}` is root; name an unprivileged user", server.user);
    }
    Ok(Some(Target { name: server.user.clone(), uid, gid }))
}

/// As root, before serving: everything under the data directory belongs to the target (files
/// the CLI created as root included), and the certificate and key files are readable by its
/// group, so a SIGHUP reload can read them after the drop.
pub fn hand_over(target: &Target, data_dir: &Path, tls_files: &[&Path]) -> anyhow::Result<()> {
    let mut changed = 0;
    give(target, data_dir, &mut changed).with_context(|| format!("server.data_dir: giving {} to {}", data_dir.display(), target.name))?;
    for file in tls_files {
        let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
        if meta.gid() != target.gid && meta.uid() == 0 {
            std::os::unix::fs::chown(file, None, Some(target.gid)).with_context(|| format!("chgrp {}", file.display()))?;
            changed += 1;
        }
    }
    if changed > 0 {
        info!(event = "ownership_fixed", user = %target.name, count = changed);
    }
    Ok(())
}

/// As root, before serving: the master key file (`store.encryption.key_file`, mode 0600)
/// goes to the target, so a SIGHUP reload — `rampart keys rotate` beside the running server —
/// can read it after the drop; `keys rotate` keeps the owner when it rewrites the file.
pub fn hand_over_key(target: &Target, key_file: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(key_file) {
        Ok(meta) if meta.uid() == 0 => {
            std::os::unix::fs::chown(key_file, Some(target.uid), Some(target.gid))
                .with_context(|| format!("store.encryption.key_file: giving {} to {}", key_file.display(), target.name))?;
            info!(event = "ownership_fixed", user = %target.name, count = 1);
            Ok(())
        }
        // Not there: the key comes from the environment or a credential.
        _ => Ok(()),
    }
}

fn give(target: &Target, path: &Path, changed: &mut u64) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if (meta.uid(), meta.gid()) != (target.uid, target.gid) {
        std::os::unix::fs::lchown(path, Some(target.uid), Some(target.gid))?;
        *changed += 1;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            give(target, &entry?.path(), changed)?;
        }
    }
    Ok(())
}

/// Becomes the target for good: supplementary groups, group, then user (glibc applies each to
/// every thread). From a non-zero UID the kernel clears every capability. `incoming`: the
/// directory under `data_dir` where message bodies are written first, probed after the drop.
pub fn become_target(target: &Target, data_dir: &Path, incoming: &Path) -> anyhow::Result<()> {
    // SAFETY: plain system calls on integers and a one-element array that outlives the call.
    unsafe {
        if libc::setgroups(1, &target.gid) != 0 {
            bail!("setgroups: {}", std::io::Error::last_os_error());
        }
        if libc::setgid(target.gid) != 0 {
            bail!("setgid({}): {}", target.gid, std::io::Error::last_os_error());
        }
        if libc::setuid(target.uid) != 0 {
            bail!("setuid({}): {}", target.uid, std::io::Error::last_os_error());
        }
        if libc::setuid(0) == 0 {
            bail!("root could be regained after dropping privileges");
        }
    }
    // The data directory's parents must let the user through, or every write would fail later.
    let probe = incoming.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)).with_context(|| {
        format!(
            "server.data_dir: {} cannot write in {} (are its parent directories open to it? chgrp {} them, mode 0750)",
            target.name,
            data_dir.display(),
            target.name
        )
    })?;
    info!(event = "privileges_dropped", user = %target.name, uid = target.uid, gid = target.gid);
    Ok(())
}

/// The primary group of `user`, if the user exists (`rampart init`, run before any thread).
pub fn primary_group(user: &str) -> anyhow::Result<Option<u32>> {
    Ok(lookup_user(user)?.map(|(_, gid)| gid))
}

fn lookup_user(name: &str) -> anyhow::Result<Option<(u32, u32)>> {
    let c = CString::new(name).context("server.user contains a NUL byte")?;
    // SAFETY: no other thread of ours calls getpw*/getgr* (serve looks up before its runtime
    // starts, init once), so the static record is not overwritten; it is read at once.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    // SAFETY: non-null means a valid passwd record.
    Ok((!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

fn lookup_group(name: &str) -> anyhow::Result<Option<u32>> {
    let c = CString::new(name).context("server.group contains a NUL byte")?;
    // SAFETY: as in lookup_user.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    // SAFETY: non-null means a valid group record.
    Ok((!gr.is_null()).then(|| unsafe { (*gr).gr_gid }))
}
