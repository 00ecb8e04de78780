//! The milter wire format without I/O: packet framing, the commands an MTA sends and the
//! replies a filter sends, as pure functions over bytes.
//!
//! The protocol is Sendmail's milter protocol, version 6, as defined by Sendmail's
//! `include/libmilter/mfdef.h` and `libmilter/engine.c` (there is no RFC). Every packet is a
//! 4-byte big-endian length, then that many bytes: one command byte and its data. Strings in
//! the data are NUL-terminated; numbers are 4-byte (ports 2-byte) big-endian.
//!
//! - [`command`]: encoding of what we send (`SMFIC_*`: OPTNEG, macros, connect, HELO, MAIL,
//!   RCPT, DATA, headers, end of headers, body, end of message, abort, quit), and decoding of
//!   the same for the test milters and the fuzzer.
//! - [`reply`]: decoding of everything a filter may answer (`SMFIR_*`: accept, continue,
//!   reject, tempfail, discard, reply code, skip, progress, connection failure, shutdown,
//!   the OPTNEG answer with its symbol lists, and the modifications), and encoding of the same
//!   for the test milters.
//!
//! Limits: a packet longer than [`MAX_PACKET`] is refused before any of it is buffered. That
//! is libmilter's own bound (`MILTER_MAX_DATA_SIZE`, 64 KiB − 1 of data): we never offer the
//! `SMFIP_MDS_256K`/`_1M` flags that raise it, so a real filter never sends more. What a
//! filter sends is checked as it is decoded — header names, folded header values without
//! injected lines, addresses without line breaks, SMTP reply codes — so the session hands the
//! caller only well-formed modifications.

pub mod command;
pub mod reply;

pub use command::{Command, Peer};
pub use reply::{Modification, Reply, SmtpReply};

/// The protocol version we speak (`SMFI_PROT_VERSION`).
pub const VERSION: u32 = 6;
/// The oldest filter version we accept in its OPTNEG answer: version 2 is the first with the
/// protocol flags; older milters predate every filter still maintained.
pub const MIN_VERSION: u32 = 2;
/// The most data one packet may carry (`MILTER_MAX_DATA_SIZE`).
pub const MAX_DATA: usize = 65535;
/// The longest packet: a command byte and [`MAX_DATA`].
pub const MAX_PACKET: usize = MAX_DATA + 1;
/// The largest body chunk we send (`MILTER_CHUNK_SIZE`).
pub const BODY_CHUNK: usize = 65535;

/// Why bytes from a filter are not a valid packet or reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet of {0} bytes is over the {MAX_PACKET}-byte limit")]
    TooLarge(usize),
    #[error("empty packet (no command byte)")]
    Empty,
    #[error("unknown code {0:?}")]
    UnknownCode(char),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Why a command could not be encoded (the caller's data, not the filter's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("{0} is too long for one milter packet")]
    TooLarge(&'static str),
}

/// Which actions (modifications) the MTA allows a filter (`SMFIF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(pub u32);

impl Actions {
    pub const ADD_HEADERS: Actions = Actions(0x01);
    pub const CHANGE_BODY: Actions = Actions(0x02);
    pub const ADD_RCPT: Actions = Actions(0x04);
    pub const DEL_RCPT: Actions = Actions(0x08);
    pub const CHANGE_HEADERS: Actions = Actions(0x10);
    pub const QUARANTINE: Actions = Actions(0x20);
    pub const CHANGE_FROM: Actions = Actions(0x40);
    pub const ADD_RCPT_PAR: Actions = Actions(0x80);
    pub const SET_SYMLIST: Actions = Actions(0x100);
    /// Every action of version 6: we honour them all.
    pub const ALL: Actions = Actions(0x1ff);

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Protocol flags (`SMFIP_*`): steps a filter does not want (`NO_*`), steps it will not answer
/// (`NR_*`), and features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protocol(pub u32);

impl Protocol {
    pub const NO_CONNECT: Protocol = Protocol(0x01);
    pub const NO_HELO: Protocol = Protocol(0x02);
    pub const NO_MAIL: Protocol = Protocol(0x04);
    pub const NO_RCPT: Protocol = Protocol(0x08);
    pub const NO_BODY: Protocol = Protocol(0x10);
    pub const NO_HEADERS: Protocol = Protocol(0x20);
    pub const NO_EOH: Protocol = Protocol(0x40);
    pub const NR_HEADER: Protocol = Protocol(0x80);
    pub const NO_UNKNOWN: Protocol = Protocol(0x100);
    pub const NO_DATA: Protocol = Protocol(0x200);
    /// The MTA understands SMFIR_SKIP (stop sending body chunks).
    pub const SKIP: Protocol = Protocol(0x400);
    pub const RCPT_REJ: Protocol = Protocol(0x800);
    pub const NR_CONNECT: Protocol = Protocol(0x1000);
    pub const NR_HELO: Protocol = Protocol(0x2000);
    pub const NR_MAIL: Protocol = Protocol(0x4000);
    pub const NR_RCPT: Protocol = Protocol(0x8000);
    pub const NR_DATA: Protocol = Protocol(0x10000);
    pub const NR_UNKNOWN: Protocol = Protocol(0x20000);
    pub const NR_EOH: Protocol = Protocol(0x40000);
    pub const NR_BODY: Protocol = Protocol(0x80000);
    pub const HDR_LEADSPC: Protocol = Protocol(0x100000);
    pub const MDS_256K: Protocol = Protocol(0x10000000);
    pub const MDS_1M: Protocol = Protocol(0x20000000);

    /// What we support and offer: every step may be skipped or left unanswered, and SKIP.
    /// Not offered: RCPT_REJ (we never pass refused recipients on), HDR_LEADSPC (header values
    /// go without the space after the colon, as classic milters expect) and the larger packet
    /// sizes (they would raise [`MAX_PACKET`]).
    pub const OFFERED: Protocol = Protocol(0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0xff000);

    pub fn contains(self, other: Protocol) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The stages macros are defined for (`SMFIM_*`), in a filter's symbol lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MacroStage {
    Connect = 0,
    Helo = 1,
    Mail = 2,
    Rcpt = 3,
    Data = 4,
    Eom = 5,
    Eoh = 6,
}

impl MacroStage {
    pub const ALL: [MacroStage; 7] =
        [MacroStage::Connect, MacroStage::Helo, MacroStage::Mail, MacroStage::Rcpt, MacroStage::Data, MacroStage::Eom, MacroStage::Eoh];

    pub fn from_u32(n: u32) -> Option<MacroStage> {
        MacroStage::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// The command the macros of this stage precede (the second byte of an `SMFIC_MACRO`).
    pub fn command(self) -> u8 {
        match self {
            MacroStage::Connect => b'C',
            MacroStage::Helo => b'H',
            MacroStage::Mail => b'M',
            MacroStage::Rcpt => b'R',
            MacroStage::Data => b'T',
            MacroStage::Eom => b'E',
            MacroStage::Eoh => b'N',
        }
    }
}

/// The three numbers of an OPTNEG packet, and in a filter's answer the macros it asks for per
/// stage (what `smfi_setsymlist` sets; libmilter sends them here, after the numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptNeg {
    pub version: u32,
    pub actions: Actions,
    pub protocol: Protocol,
    pub symlists: Vec<SymList>,
}

/// The macro names a filter wants at one stage, e.g. `{auth_authen} {client_addr}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymList {
    pub stage: MacroStage,
    pub names: Vec<String>,
}

/// The length of the packet a 4-byte header announces, checked against [`MAX_PACKET`] before
/// anything of it is read.
pub fn packet_len(header: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    if len > MAX_PACKET {
        return Err(DecodeError::TooLarge(len));
    }
    Ok(len)
}

/// Frames a packet: the length header, the code, the data.
pub(crate) fn frame(code: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if data.len() > MAX_DATA {
        return Err(EncodeError::TooLarge("packet"));
    }
    // Fits: at most MAX_PACKET, far below u32::MAX.
    out.extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
    out.push(code);
    out.extend_from_slice(data);
    Ok(())
}

/// Splits a byte stream into packets (code, data): push what was read, take packets out.
/// Used by the fuzzer and by tests; the session reads the header and then exactly the
/// announced length, with the same [`packet_len`] check.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, `None` until one has arrived, an error for a bad length (after
    /// which the stream cannot be resynchronised: drop the connection).
    pub fn next_packet(&mut self) -> Result<Option<(u8, Vec<u8>)>, DecodeError> {
        let Some(header) = self.buf.first_chunk::<4>() else { return Ok(None) };
        let len = packet_len(*header)?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let packet: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
        Ok(Some((packet[0], packet[1..].to_vec())))
    }
}

/// Reads NUL-terminated strings and big-endian numbers from a packet's data.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Cursor { data, what }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let (n, rest) = self.data.split_first_chunk::<4>().ok_or(DecodeError::Malformed(self.what))?;
        self.data = rest;
        Ok(u32::from_be_bytes(*n))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let (n, rest) = self.data.split_first_chunk::<2>().ok_or(DecodeError::Malformed(self.what))?;
        self.data = rest;
        Ok(u16::from_be_bytes(*n))
    }

    /// Bytes up to the next NUL, which is consumed.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let end = self.data.iter().position(|&b| b == 0).ok_or(DecodeError::Malformed(self.what))?;
        let s = &self.data[..end];
        self.data = &self.data[end + 1..];
        Ok(s)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Malformed(self.what))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Nothing may follow the last field.
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.data.is_empty() { Ok(()) } else { Err(DecodeError::Malformed(self.what)) }
    }
}

/// Appends `s` and its NUL terminator, refusing a NUL inside.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8], what: &'static str) -> Result<(), EncodeError> {
    if s.contains(&0) {
        return Err(EncodeError::Nul(what));
    }
    out.extend_from_slice(s);
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framer_splits_packets_and_refuses_bad_lengths() {
        let mut f = Framer::default();
        f.push(&[0, 0, 0, 1, b'c', 0, 0]);
        assert_eq!(f.next_packet(), Ok(Some((b'c', vec![]))));
        assert_eq!(f.next_packet(), Ok(None));
        f.push(&[0, 3, b'h', b'x']);
        assert_eq!(f.next_packet(), Ok(None));
        f.push(&[0]);
        assert_eq!(f.next_packet(), Ok(Some((b'h', vec![b'x', 0]))));

        let mut f = Framer::default();
        f.push(&[0, 0, 0, 0]);
        assert_eq!(f.next_packet(), Err(DecodeError::Empty));
        let mut f = Framer::default();
        f.push(&((MAX_PACKET + 1) as u32).to_be_bytes());
        assert_eq!(f.next_packet(), Err(DecodeError::TooLarge(MAX_PACKET + 1)));
        assert_eq!(packet_len([0xff, 0xff, 0xff, 0xff]), Err(DecodeError::TooLarge(u32::MAX as usize)));
        assert_eq!(packet_len((MAX_PACKET as u32).to_be_bytes()), Ok(MAX_PACKET));
    }

    #[test]
    fn oversized_data_is_not_framed() {
        let mut out = Vec::new();
        assert_eq!(frame(b'b', &vec![0; MAX_DATA + 1], &mut out), Err(EncodeError::TooLarge("packet")));
        assert!(frame(b'b', &vec![0; MAX_DATA], &mut out).is_ok());
        assert_eq!(out.len(), 4 + MAX_PACKET);
    }

    #[test]
    fn offered_flags_are_the_documented_ones() {
        let p = Protocol::OFFERED;
        for f in [Protocol::NO_CONNECT, Protocol::NO_HELO, Protocol::NO_MAIL, Protocol::NO_RCPT, Protocol::NO_BODY,
            Protocol::NO_HEADERS, Protocol::NO_EOH, Protocol::NR_HEADER, Protocol::NO_UNKNOWN, Protocol::NO_DATA,
            Protocol::SKIP, Protocol::NR_CONNECT, Protocol::NR_HELO, Protocol::NR_MAIL, Protocol::NR_RCPT,
            Protocol::NR_DATA, Protocol::NR_UNKNOWN, Protocol::NR_EOH, Protocol::NR_BODY]
        {
            assert!(p.contains(f), "{f:?}");
        }
        for f in [Protocol::RCPT_REJ, Protocol::HDR_LEADSPC, Protocol::MDS_256K, Protocol::MDS_1M] {
            assert!(!p.contains(f), "{f:?}");
        }
    }
}
