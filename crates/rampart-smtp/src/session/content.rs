//! Message content (DATA and BDAT) as it streams in: through the receiver's line and size rules
//! into a blob, keeping the header section in memory for the end-of-data steps ([`super::finish`]).

use rampart_store::{BlobWriter, StoreError};
use tracing::warn;

use super::state::{Chunks, Phase};
use super::{Connection, Next, Session};
use crate::data::{Fatal, Fed, Framing, Receiver};
use crate::headers::HeaderScan;
use super::Limits;
use crate::reply::Reply;

/// Bytes of the message start kept in memory to read its header section (From, Date,
/// Message-ID). Header sections of real mail fit; longer ones are refused on submission.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// A message being received.
#[derive(Debug)]
pub(super) struct Content {
    pub receiver: Receiver,
    /// None once a limit was hit or a write failed: nothing more is kept.
    pub blob: Option<BlobWriter>,
    scratch: Vec<u8>,
    /// The first [`MAX_HEAD`] bytes.
    pub head: Vec<u8>,
    /// The header section's size, fields and Received hops, counted as they stream.
    pub headers: HeaderScan,
}

/// What a client hears when the store fails it (RFC 3463 4.3.0, a temporary mail system
/// failure): never the cause, which only the log gets.
pub(super) fn temp_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary storage failure, try again later")
}

/// Logs a store failure of transaction `id` ("-" before there is one) with its causes; the
/// reply for the client.
pub(super) fn store_failed(id: &str, e: &StoreError) -> Reply {
    warn!(event = "store_error", id, error = %e.chain());
    temp_failure()
}

impl Connection {
    /// The milters at DATA (or the first BDAT): a refusal, if one refuses.
    async fn milters_data(&mut self) -> Option<Next> {
        if self.milters.is_empty() {
            return None;
        }
        let (answer, _) = self.milters.data().await;
        answer.and_then(|a| self.milter_refusal(a))
    }

    fn new_content(&self, framing: Framing, limits: &Limits) -> Result<Content, Reply> {
        let blob = self.services.store.blob_writer().map_err(|e| store_failed("-", &e))?;
        Ok(Content {
            receiver: Receiver::new(framing, limits.max_message_size, self.settings.max_data_line),
            headers: HeaderScan::new(limits.header()),
            blob: Some(blob),
            scratch: Vec::new(),
            head: Vec::new(),
        })
    }

    /// Content that broke a line rule: nobody can say where the client meant it to end.
    fn fatal_content(&self, fatal: Fatal) -> Reply {
        let (what, reply) = match fatal {
            Fatal::BareLf => ("bare_lf", Reply::new(500, "5.5.2", "Bare LF in message; lines must end with CRLF")),
            Fatal::BareCr => ("bare_cr", Reply::new(500, "5.5.2", "Bare CR in message; lines must end with CRLF")),
            Fatal::Nul => ("nul", Reply::new(500, "5.6.0", "NUL character in message")),
        };
        warn!(event = "message_refused", ip = %self.remote.ip(), listener = self.settings.listener, reason = what);
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => what).increment(1);
        reply
    }
}

impl Session {
    /// The current transaction's limits (the listener's outside one).
    fn limits(&self) -> Limits {
        match &self.phase {
            Phase::Mail(_, tx) | Phase::Data(_, tx, _) | Phase::Chunking { tx, .. } => tx.limits,
            _ => self.conn.settings.limits,
        }
    }

    pub(super) async fn data_start(&mut self) -> Next {
        if let Some(next) = self.conn.milters_data().await {
            return next;
        }
        let limits = self.limits();
        let content = match self.conn.new_content(Framing::Dot, &limits) {
            Ok(content) => content,
            Err(reply) => return Next::Reply(reply),
        };
        match std::mem::replace(&mut self.phase, Phase::Connected) {
            Phase::Mail(helo, tx) => {
                self.phase = Phase::Data(helo, tx, content);
                Next::Data(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"))
            }
            other => {
                self.phase = other;
                self.conn.error(Reply::new(503, "5.5.1", "Need MAIL and RCPT first"))
            }
        }
    }

    /// Feeds DATA content. `Err` means the session must end with that reply.
    pub async fn data(&mut self, input: &[u8]) -> Result<Fed, Next> {
        let Phase::Data(_, _, content) = &mut self.phase else {
            return Err(Next::Close(Reply::new(503, "5.5.1", "No DATA in progress")));
        };
        match feed(content, input).await {
            Ok(fed) => Ok(fed),
            Err(fatal) => {
                self.phase = std::mem::replace(&mut self.phase, Phase::Connected).reset();
                Err(Next::Close(self.conn.fatal_content(fatal)))
            }
        }
    }

    /// The DATA terminator arrived: store the message or say why not.
    pub async fn data_end(&mut self) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Connected) {
            Phase::Data(helo, tx, content) => {
                let next = self.conn.finish(&helo, tx, content).await;
                self.phase = Phase::Greeted(helo);
                next
            }
            other => {
                self.phase = other;
                Next::Reply(Reply::new(503, "5.5.1", "No DATA in progress"))
            }
        }
    }

    /// BDAT, once [`Session::allowed`] has checked EHLO and recipients.
    pub(super) async fn bdat_start(&mut self, size: u64, last: bool) -> Next {
        if matches!(self.phase, Phase::Mail(..))
            && let Some(next) = self.conn.milters_data().await {
                return match next {
                    Next::Reply(reply) => Next::BdatDiscard { size, reply },
                    close => close,
                };
            }
        if last && self.conn.user.is_none() {
            // Checked by the driver once the chunk is read, before the message is stored.
            self.sync_point = Some("BDAT LAST");
        }
        match std::mem::replace(&mut self.phase, Phase::Connected) {
            Phase::Mail(helo, tx) => match self.conn.new_content(Framing::Chunked, &tx.limits) {
                Ok(content) => {
                    self.phase = Phase::Chunking { helo, tx, chunks: Chunks::Receiving(content), last };
                    Next::Bdat { size }
                }
                Err(reply) => {
                    self.phase = Phase::Mail(helo, tx);
                    Next::BdatDiscard { size, reply }
                }
            },
            Phase::Chunking { helo, tx, chunks, .. } => {
                self.phase = Phase::Chunking { helo, tx, chunks, last };
                Next::Bdat { size }
            }
            other => {
                self.phase = other;
                let reply = Reply::new(503, "5.5.1", "Need MAIL and RCPT first");
                match self.conn.error(reply) {
                    Next::Reply(reply) => Next::BdatDiscard { size, reply },
                    close => close,
                }
            }
        }
    }

    /// Feeds one piece of a BDAT chunk. A fatal error here keeps the stream in sync (the
    /// chunk has a length), so the rest of the chunk is discarded and the reply comes at its end.
    pub async fn bdat_data(&mut self, input: &[u8]) {
        let Phase::Chunking { chunks, .. } = &mut self.phase else { return };
        let Chunks::Receiving(content) = chunks else { return };
        if let Err(fatal) = feed(content, input).await {
            *chunks = Chunks::Broken(fatal);
        }
    }

    pub async fn bdat_end(&mut self) -> Next {
        match std::mem::replace(&mut self.phase, Phase::Connected) {
            Phase::Chunking { helo, tx, chunks, last } => {
                let content = match chunks {
                    Chunks::Receiving(content) => match (last, content.receiver.finish_chunks()) {
                        (true, Err(fatal)) => Err(fatal),
                        _ => Ok(content),
                    },
                    Chunks::Broken(fatal) => Err(fatal),
                };
                match content {
                    Err(fatal) => {
                        // The chunk length kept the stream in sync, so the session may go on.
                        self.phase = Phase::Greeted(helo);
                        let reply = self.conn.fatal_content(fatal);
                        self.conn.error(reply)
                    }
                    Ok(content) if !last => {
                        let received = content.receiver.size();
                        self.phase = Phase::Chunking { helo, tx, chunks: Chunks::Receiving(content), last };
                        Next::Reply(Reply::new(250, "2.0.0", format!("{received} octets received")))
                    }
                    Ok(content) => {
                        let next = self.conn.finish(&helo, tx, content).await;
                        self.phase = Phase::Greeted(helo);
                        next
                    }
                }
            }
            other => {
                self.phase = other;
                Next::Reply(Reply::new(503, "5.5.1", "No transaction"))
            }
        }
    }
}

/// Runs content through the receiver and appends what it keeps to the blob.
async fn feed(content: &mut Content, input: &[u8]) -> Result<Fed, Fatal> {
    content.scratch.clear();
    let fed = content.receiver.feed(input, &mut content.scratch)?;
    if !content.headers.done() {
        content.headers.feed(&content.scratch);
    }
    if content.receiver.soft_error().is_some() || content.headers.violation().is_some() {
        // Past a limit: drop the partial blob now rather than holding it to the end.
        content.blob = None;
        return Ok(fed);
    }
    if content.head.len() < MAX_HEAD {
        let take = content.scratch.len().min(MAX_HEAD - content.head.len());
        content.head.extend_from_slice(&content.scratch[..take]);
    }
    if let Some(blob) = content.blob.as_mut()
        && !content.scratch.is_empty() && blob.write(&content.scratch).await.is_err() {
            content.blob = None;
        }
    Ok(fed)
}
