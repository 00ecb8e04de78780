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
    /// Bumped on every give-back, so the reaper sees whether logins happened meanwhile.
    generation: u64,
    reaper: bool,
}

impl WorkAreas {
    pub(crate) fn take(&self) -> Vec<Block> {
        self.lock().free.pop().unwrap_or_default()
    }

    pub(crate) fn give_back(self: &Arc<Self>, area: Vec<Block>) {
        let mut inner = self.lock();
        inner.free.push(area);
        inner.generation += 1;
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
                let seen = this.lock().generation;
                tokio::time::sleep(LINGER).await;
                let mut inner = this.lock();
                if inner.generation == seen {
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
