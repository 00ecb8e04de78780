//! The modifications a filter sends at end of message, gathered in order: each checked against
//! the actions it negotiated (one it did not is a protocol error, never applied) and capped, so
//! a filter cannot make us hold more than [`MAX_MODIFICATIONS`] changes of
//! [`MAX_MODIFICATION_BYTES`] together, or a replacement body over the session's limit.

use super::codec::{Actions, Modification};
use super::types::ErrorKind;

/// Most modifications one end of message may carry (headers, recipients, sender, quarantine).
pub const MAX_MODIFICATIONS: usize = 1000;
/// Most bytes those modifications may hold together (the body aside).
pub const MAX_MODIFICATION_BYTES: usize = 1024 * 1024;

/// Modifications gathered at end of message, checked against what was negotiated and capped.
pub(crate) struct Mods {
    actions: Actions,
    max_body: usize,
    pub(crate) list: Vec<Modification>,
    bytes: usize,
    body: Option<usize>,
}

impl Mods {
    pub(crate) fn new(actions: Actions, max_body: usize) -> Mods {
        Mods { actions, max_body, list: Vec::new(), bytes: 0, body: None }
    }

    pub(crate) fn push(&mut self, m: Modification) -> Result<(), ErrorKind> {
        let (needed, name) = required_action(&m);
        if !needed.iter().any(|a| self.actions.contains(*a)) {
            return Err(ErrorKind::NotNegotiated(name));
        }
        if let Modification::ReplaceBody(chunk) = m {
            return self.push_body(chunk);
        }
        self.bytes += modification_size(&m);
        if self.list.len() >= MAX_MODIFICATIONS || self.bytes > MAX_MODIFICATION_BYTES {
            return Err(ErrorKind::TooMuch("modifications"));
        }
        self.list.push(m);
        Ok(())
    }

    /// Body chunks are appended to the first replacement, in order.
    fn push_body(&mut self, chunk: Vec<u8>) -> Result<(), ErrorKind> {
        let Some(i) = self.body else {
            if chunk.len() > self.max_body {
                return Err(ErrorKind::TooMuch("replacement body"));
            }
            self.body = Some(self.list.len());
            self.list.push(Modification::ReplaceBody(chunk));
            return Ok(());
        };
        let Modification::ReplaceBody(body) = &mut self.list[i] else { unreachable!("index of the body entry") };
        if body.len() + chunk.len() > self.max_body {
            return Err(ErrorKind::TooMuch("replacement body"));
        }
        body.extend_from_slice(&chunk);
        Ok(())
    }
}

/// The actions (any one suffices) that allow a modification, and its name for errors.
fn required_action(m: &Modification) -> (&'static [Actions], &'static str) {
    match m {
        Modification::AddHeader { .. } => (&[Actions::ADD_HEADERS], "add header"),
        // libmilter's smfi_insheader asks for ADD_HEADERS, not CHANGE_HEADERS.
        Modification::InsertHeader { .. } => (&[Actions::ADD_HEADERS], "insert header"),
        Modification::ChangeHeader { .. } => (&[Actions::CHANGE_HEADERS], "change header"),
        Modification::ReplaceBody(_) => (&[Actions::CHANGE_BODY], "replace body"),
        Modification::AddRcpt { args: None, .. } => (&[Actions::ADD_RCPT, Actions::ADD_RCPT_PAR], "add recipient"),
        Modification::AddRcpt { args: Some(_), .. } => (&[Actions::ADD_RCPT_PAR], "add recipient with parameters"),
        Modification::DelRcpt(_) => (&[Actions::DEL_RCPT], "delete recipient"),
        Modification::ChangeFrom { .. } => (&[Actions::CHANGE_FROM], "change sender"),
        Modification::Quarantine(_) => (&[Actions::QUARANTINE], "quarantine"),
    }
}

fn modification_size(m: &Modification) -> usize {
    match m {
        Modification::AddHeader { name, value }
        | Modification::ChangeHeader { name, value, .. }
        | Modification::InsertHeader { name, value, .. } => name.len() + value.len(),
        Modification::AddRcpt { rcpt: a, args } | Modification::ChangeFrom { from: a, args } => a.len() + args.as_ref().map_or(0, String::len),
        Modification::DelRcpt(s) | Modification::Quarantine(s) => s.len(),
        Modification::ReplaceBody(b) => b.len(),
    }
}
