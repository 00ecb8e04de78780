//! Compact flags for mailbox views: the distinct flag lists of a mailbox kept once, and per
//! message only the number of its list.

use std::collections::HashMap;
use std::sync::Arc;

use super::view::split_flags;

/// The distinct flag lists of a mailbox, each kept once; messages refer to them by number.
/// A mailbox has few distinct combinations, so a message costs two bytes of flags. Shared, so
/// that a command going through every message ([`super::view::Msg`]) copies none.
#[derive(Default)]
pub(super) struct FlagSets {
    pub(super) lists: Vec<Arc<[String]>>,
    index: HashMap<String, u32>,
}

impl FlagSets {
    pub(super) fn intern(&mut self, flags: &str) -> u32 {
        if let Some(&n) = self.index.get(flags) {
            return n;
        }
        let n = self.lists.len() as u32;
        self.lists.push(split_flags(flags).into());
        self.index.insert(flags.to_string(), n);
        n
    }
}

/// The flag-list number of each message: two bytes each while the mailbox has fewer than
/// 65,536 distinct flag lists, four after.
pub(super) enum FlagIds {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl FlagIds {
    pub(super) fn get(&self, i: usize) -> u32 {
        match self {
            FlagIds::Narrow(v) => u32::from(v[i]),
            FlagIds::Wide(v) => v[i],
        }
    }

    pub(super) fn set(&mut self, i: usize, id: u32) {
        self.widen_for(id);
        match self {
            FlagIds::Narrow(v) => v[i] = id as u16,
            FlagIds::Wide(v) => v[i] = id,
        }
    }

    pub(super) fn push(&mut self, id: u32) {
        self.widen_for(id);
        match self {
            FlagIds::Narrow(v) => v.push(id as u16),
            FlagIds::Wide(v) => v.push(id),
        }
    }

    fn widen_for(&mut self, id: u32) {
        if let FlagIds::Narrow(v) = self
            && id > u32::from(u16::MAX)
        {
            *self = FlagIds::Wide(v.iter().map(|&x| u32::from(x)).collect());
        }
    }

    pub(super) fn retain_by(&mut self, keep: &[bool]) {
        let mut k = keep.iter();
        match self {
            FlagIds::Narrow(v) => v.retain(|_| *k.next().unwrap_or(&true)),
            FlagIds::Wide(v) => v.retain(|_| *k.next().unwrap_or(&true)),
        }
    }
}
