//! argon2 work areas, kept between logins and given back when logins stop.
//!
//! A login with the default cost fills 19 MiB. Allocating that afresh each time made the
//! kernel fault in and zero 4,864 pages per login (a fifth of its CPU); keeping one area per
//! hashing lane forever would add that much to an idle server. So areas are reused while
//! logins keep coming and freed once none came for [`LINGER`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;

/// How long unused work areas are kept.
const LINGER: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct WorkAreas {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    free: Vec<Vec<Block>>,
    /// When an area was last given back: the reaper frees them all [`LINGER`] after it.
    last_use: Option<tokio::time::Instant>,
    reaper: bool,
}

impl WorkAreas {
    pub(crate) fn take(&self) -> Vec<Block> {
        self.lock().free.pop().unwrap_or_default()
    }

    pub(crate) fn give_back(self: &Arc<Self>, area: Vec<Block>) {
        // libsodium checked the hash and the area was never grown: nothing worth keeping.
        if area.capacity() == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.free.push(area);
        inner.last_use = Some(tokio::time::Instant::now());
        if inner.reaper {
            return;
        }
        // Outside a runtime (unit tests of the sync API) nothing lingers: drop the area.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.free.clear();
            return;
        };
        inner.reaper = true;
        let this = self.clone();
        runtime.spawn(async move {
            loop {
                let due = this.lock().last_use.map(|t| t + LINGER);
                if let Some(due) = due {
                    tokio::time::sleep_until(due).await;
                }
                let mut inner = this.lock();
                if inner.last_use.is_none_or(|t| t + LINGER <= tokio::time::Instant::now()) {
                    inner.free.clear();
                    inner.reaper = false;
                    return;
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.lock().free.len()
    }
}
