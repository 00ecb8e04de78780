//! CATENATE (RFC 4469): an APPEND message assembled from literal text and URLs (RFC 5092) of
//! messages or sections the user already has, written into one blob as it is assembled.
//!
//! A URL names a message of the session's own user only: a relative URL (`/INBOX/;UID=3`),
//! or an absolute one whose host is this server's name (or `localhost`) and whose user, if
//! given, is the logged-in one. Anything else, a stale UIDVALIDITY or a message that does
//! not exist answers `NO [BADURL url]` (RFC 4469 §5), as Dovecot does.

use rampart_store::{BlobWriter, MailStore, StoreError};
use tokio::io::AsyncReadExt;

use super::{Session, User};
use crate::mime::Parsed;
use crate::parser::CatPart;
use rampart_imap_proto::imapurl::ImapUrl;

/// Bytes copied at a time from a stored message or a staged literal.
const COPY_CHUNK: usize = 64 * 1024;

/// Why a CATENATE message cannot be made; the session answers it with the tagged NO.
pub(super) enum Refused {
    /// RFC 4469 §5: the URL (as the client gave it) names nothing this user may read.
    BadUrl(String),
    /// The message would be larger than APPENDLIMIT.
    TooBig,
    /// A streamed literal could not be written (disk): try again later.
    Unavailable(String),
}

/// What a session's CATENATE reads from: the store, the user, and the limit.
struct Source<'a> {
    store: &'a dyn MailStore,
    user: &'a User,
    hostname: &'a str,
    max: u64,
}

impl Session {
    /// Assembles a CATENATE message into a new blob writer. `staged` holds the literals the
    /// driver streamed to blobs, by where they were in the command.
    pub(super) async fn catenate(
        &self,
        parts: Vec<CatPart>,
        staged: &mut Vec<(usize, Result<BlobWriter, String>)>,
    ) -> Result<Result<BlobWriter, Refused>, StoreError> {
        let Some(user) = self.user() else { return Ok(Err(Refused::BadUrl(String::new()))) };
        let store = self.services.store.clone();
        let src = Source { store: store.as_ref(), user, hostname: &self.services.hostname, max: self.settings.max_append_size };
        let mut out = store.blob_writer()?;
        for part in parts {
            let refused = match part {
                CatPart::Text { text, literal_at } => match staged.iter().position(|(at, _)| *at == literal_at) {
                    Some(i) => match staged.swap_remove(i).1 {
                        Ok(w) => copy_staged(w, &mut out, &src).await?,
                        Err(e) => Some(Refused::Unavailable(e)),
                    },
                    None => write_capped(&mut out, &text, &src).await?,
                },
                CatPart::Url(url) => copy_url(&url, &mut out, &src).await?,
            };
            if let Some(r) = refused {
                return Ok(Err(r));
            }
        }
        Ok(Ok(out))
    }
}

/// Writes `data`, or refuses when the message would pass APPENDLIMIT.
async fn write_capped(out: &mut BlobWriter, data: &[u8], src: &Source<'_>) -> Result<Option<Refused>, StoreError> {
    if out.size().saturating_add(data.len() as u64) > src.max {
        return Ok(Some(Refused::TooBig));
    }
    out.write(data).await?;
    Ok(None)
}

/// Copies a literal the driver streamed to its own blob.
async fn copy_staged(staged: BlobWriter, out: &mut BlobWriter, src: &Source<'_>) -> Result<Option<Refused>, StoreError> {
    if out.size().saturating_add(staged.size()) > src.max {
        return Ok(Some(Refused::TooBig));
    }
    // Dropped after the copy, the uncommitted blob removes its file.
    let blob = staged.finish().await?;
    let mut reader = blob.reader().await?;
    let mut buf = vec![0; COPY_CHUNK];
    loop {
        let n = reader.read(&mut buf).await.map_err(|source| StoreError::Io { path: blob.id().into(), source })?;
        if n == 0 {
            return Ok(None);
        }
        out.write(&buf[..n]).await?;
    }
}

/// Copies what `url` names: the whole message (or a range) streamed from the store, a
/// section from the parsed message.
async fn copy_url(url: &str, out: &mut BlobWriter, src: &Source<'_>) -> Result<Option<Refused>, StoreError> {
    let bad = || Ok(Some(Refused::BadUrl(url.to_string())));
    let Ok(parsed) = ImapUrl::parse(url) else { return bad() };
    if let Some(server) = &parsed.server {
        let host_ok = server.host == "localhost" || server.host.eq_ignore_ascii_case(src.hostname);
        let user_ok = server.user.as_ref().is_none_or(|u| u.eq_ignore_ascii_case(&src.user.address));
        if !host_ok || !user_ok {
            return bad();
        }
    }
    // RFC 5092 §3.2: a URL's mailbox name is UTF-8; the store keeps modified UTF-7.
    let name = crate::mutf7::encode(&parsed.mailbox);
    let Some(mailbox) = src.store.mailbox_state(src.user.id, &name).await? else { return bad() };
    if parsed.uidvalidity.is_some_and(|v| v != mailbox.uidvalidity) {
        return bad();
    }
    let Some(section) = &parsed.section else {
        let mut reader = match src.store.open_message(mailbox.id, parsed.uid).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => return bad(),
            Err(e) => return Err(e),
        };
        let (start, end) = range(reader.size(), parsed.partial);
        if out.size().saturating_add(end - start) > src.max {
            return Ok(Some(Refused::TooBig));
        }
        let mut pos = start;
        let mut buf = Vec::with_capacity(COPY_CHUNK);
        while pos < end {
            buf.clear();
            let want = COPY_CHUNK.min((end - pos) as usize);
            let got = reader.read_at(pos, want, &mut buf).await?;
            if got == 0 {
                break;
            }
            out.write(&buf).await?;
            pos += got as u64;
        }
        return Ok(None);
    };
    let raw = match src.store.read_message(mailbox.id, parsed.uid).await {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => return bad(),
        Err(e) => return Err(e),
    };
    // A part that does not exist names nothing (where FETCH answers it empty).
    let Some(data) = Parsed::new(&raw).section(section) else { return bad() };
    let (start, end) = range(data.len() as u64, parsed.partial);
    write_capped(out, &data[start as usize..end as usize], src).await
}

/// The byte range `;PARTIAL=` names in data of `size` octets, clamped to it.
fn range(size: u64, partial: Option<(u64, Option<u64>)>) -> (u64, u64) {
    match partial {
        None => (0, size),
        Some((start, len)) => {
            let start = start.min(size);
            (start, len.map_or(size, |l| start.saturating_add(l).min(size)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn partial_ranges_are_clamped() {
        assert_eq!(range(10, None), (0, 10));
        assert_eq!(range(10, Some((3, Some(4)))), (3, 7));
        assert_eq!(range(10, Some((3, None))), (3, 10));
        assert_eq!(range(10, Some((30, Some(4)))), (10, 10));
        assert_eq!(range(10, Some((8, Some(u64::MAX)))), (8, 10));
    }
}
