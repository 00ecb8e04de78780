//! FETCH of the whole message (BODY[], BODY.PEEK[], RFC822, and their `<start.len>` ranges)
//! streamed from the store: the literal's length comes from the index, then the bytes go out
//! in [`CHUNK`]-sized reads, flushed to the client whenever the answer passes
//! [`super::FLUSH_AT`]. A session never holds more than about those two sizes of a message,
//! whatever its size, and a range reads only its own bytes.

use rampart_store::MessageReader;

use super::fetch::{finish_message, write_attr};
use super::view::Msg;
use super::{FLUSH_AT, Output};
use crate::parser::FetchAttr;

/// Bytes read from the store at once.
const CHUNK: usize = 64 * 1024;

/// The whole message or a range of it, byte for byte as stored (RFC 3501 §6.4.5).
fn whole_message(a: &FetchAttr) -> bool {
    match a {
        FetchAttr::Rfc822 => true,
        FetchAttr::Section { section, .. } => section.part.is_empty() && section.text.is_none(),
        _ => false,
    }
}

/// Whether every attribute that needs the message's text wants it whole: then nothing needs
/// parsing and the message can be streamed.
pub(super) fn streamable(attrs: &[FetchAttr]) -> bool {
    attrs.iter().filter(|a| a.needs_content()).all(whole_message)
}

/// Writes `* n FETCH (...)` for a [`streamable`] attribute list, streaming the message text.
/// An error is the client's connection failing (or the stored file ending before its recorded
/// size, which leaves a literal cut short): the session must end.
pub(super) async fn write_message<O: Output>(
    out: &mut O,
    reader: &mut MessageReader,
    i: usize,
    msg: &Msg,
    attrs: &[FetchAttr],
    seen_changed: bool,
    condstore: bool,
) -> std::io::Result<()> {
    out.buf().extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
    let mut wrote_flags = false;
    for (k, a) in attrs.iter().enumerate() {
        if k > 0 {
            out.buf().push(b' ');
        }
        let range = match a {
            FetchAttr::Rfc822 => {
                out.buf().extend_from_slice(b"RFC822 ");
                None
            }
            FetchAttr::Section { partial, .. } if whole_message(a) => {
                out.buf().extend_from_slice(b"BODY[]");
                if let Some((start, _)) = partial {
                    out.buf().extend_from_slice(format!("<{start}>").as_bytes());
                }
                out.buf().push(b' ');
                *partial
            }
            other => {
                write_attr(out.buf(), other, msg, (None, None), condstore, &mut wrote_flags);
                continue;
            }
        };
        send_range(out, reader, range).await?;
    }
    finish_message(out.buf(), msg, attrs, seen_changed, condstore, wrote_flags);
    if out.buf().len() >= FLUSH_AT {
        out.flush().await?;
    }
    Ok(())
}

/// The literal of the message or of `<start.len>` of it (clamped to the message, as a
/// partial fetch past the end is empty).
async fn send_range<O: Output>(out: &mut O, reader: &mut MessageReader, range: Option<(u32, u32)>) -> std::io::Result<()> {
    let size = reader.size();
    let (start, end) = match range {
        None => (0, size),
        Some((start, len)) => {
            let start = u64::from(start).min(size);
            (start, start.saturating_add(u64::from(len)).min(size))
        }
    };
    out.buf().extend_from_slice(format!("{{{}}}\r\n", end - start).as_bytes());
    let mut pos = start;
    while pos < end {
        let want = CHUNK.min((end - pos) as usize);
        let got = reader.read_at(pos, want, out.buf()).await.map_err(|e| {
            tracing::warn!(event = "store_error", proto = "imap", error = %e.chain());
            std::io::Error::other("stored message unreadable")
        })?;
        if got == 0 {
            tracing::warn!(event = "store_error", proto = "imap", error = "stored message shorter than its recorded size");
            return Err(std::io::Error::other("stored message shorter than its recorded size"));
        }
        pos += got as u64;
        if out.buf().len() >= FLUSH_AT {
            out.flush().await?;
        }
    }
    Ok(())
}
