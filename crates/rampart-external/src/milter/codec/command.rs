//! What the MTA sends (`SMFIC_*` in mfdef.h): [`Command::encode`] for the session, and
//! [`Command::decode`] so the test milters and the fuzzer can read the same bytes back.

use std::net::{IpAddr, SocketAddr};

use super::{Actions, Cursor, DecodeError, EncodeError, MacroStage, Protocol, frame, put_str};

/// One command from MTA to filter; strings borrow from the caller (or, decoded, the packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `O`: version, the actions we allow, the protocol flags we support.
    OptNeg { version: u32, actions: Actions, protocol: Protocol },
    /// `D`: macro values for the command that follows.
    Macros { stage: MacroStage, pairs: Vec<(&'a str, &'a str)> },
    /// `C`: the client's name and address.
    Connect { hostname: &'a str, peer: Peer<'a> },
    /// `H`: the HELO/EHLO argument.
    Helo(&'a str),
    /// `M`: the sender (`<a@b>`) and then its ESMTP parameters (`SIZE=123`).
    Mail(Vec<&'a str>),
    /// `R`: one recipient and its ESMTP parameters.
    Rcpt(Vec<&'a str>),
    /// `T`: DATA (or the first BDAT).
    Data,
    /// `L`: one header, the value without the space after the colon, folding kept.
    Header { name: &'a str, value: &'a [u8] },
    /// `N`: end of headers.
    Eoh,
    /// `B`: a body chunk of at most [`super::BODY_CHUNK`] bytes.
    Body(&'a [u8]),
    /// `E`: end of message; the filter's verdict and modifications follow.
    Eom,
    /// `A`: the current message is over without an end of message (RSET, refused, aborted).
    Abort,
    /// `Q`: the connection ends.
    Quit,
}

/// The client's address in a connect command (`SMFIA_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer<'a> {
    /// `U`: not known (no port or address follows).
    Unknown,
    /// `L`: a local socket, by path.
    Unix(&'a str),
    /// `4` / `6`: an IP address and port.
    Inet(SocketAddr),
}

impl Command<'_> {
    /// Appends this command as one packet to `out`. Fails if a string holds a NUL (it would
    /// end the field early: the filter would see different data than we meant) or the packet
    /// is over the size limit (a very long header: the caller applies `on_error`).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut data = Vec::new();
        let code = match self {
            Command::OptNeg { version, actions, protocol } => {
                for n in [*version, actions.0, protocol.0] {
                    data.extend_from_slice(&n.to_be_bytes());
                }
                b'O'
            }
            Command::Macros { stage, pairs } => {
                data.push(stage.command());
                for (name, value) in pairs {
                    put_str(&mut data, name.as_bytes(), "macro name")?;
                    put_str(&mut data, value.as_bytes(), "macro value")?;
                }
                b'D'
            }
            Command::Connect { hostname, peer } => {
                put_str(&mut data, hostname.as_bytes(), "client name")?;
                encode_peer(peer, &mut data)?;
                b'C'
            }
            Command::Helo(name) => {
                put_str(&mut data, name.as_bytes(), "HELO name")?;
                b'H'
            }
            Command::Mail(args) | Command::Rcpt(args) => {
                for a in args {
                    put_str(&mut data, a.as_bytes(), "address")?;
                }
                if matches!(self, Command::Mail(_)) { b'M' } else { b'R' }
            }
            Command::Header { name, value } => {
                put_str(&mut data, name.as_bytes(), "header name")?;
                put_str(&mut data, value, "header value")?;
                b'L'
            }
            Command::Body(chunk) => {
                data.extend_from_slice(chunk);
                b'B'
            }
            Command::Data => b'T',
            Command::Eoh => b'N',
            Command::Eom => b'E',
            Command::Abort => b'A',
            Command::Quit => b'Q',
        };
        frame(code, &data, out)
    }
}

fn encode_peer(peer: &Peer<'_>, data: &mut Vec<u8>) -> Result<(), EncodeError> {
    let (family, port, addr) = match peer {
        Peer::Unknown => {
            data.push(b'U');
            return Ok(());
        }
        Peer::Unix(path) => (b'L', 0, path.to_string()),
        Peer::Inet(sa) => {
            let family = if sa.is_ipv4() { b'4' } else { b'6' };
            (family, sa.port(), sa.ip().to_string())
        }
    };
    data.push(family);
    data.extend_from_slice(&port.to_be_bytes());
    put_str(data, addr.as_bytes(), "client address")
}

impl<'a> Command<'a> {
    /// Reads one command from a packet's code and data (the filter's side of the protocol).
    pub fn decode(code: u8, data: &'a [u8]) -> Result<Command<'a>, DecodeError> {
        let mut c = Cursor::new(data, "command");
        let cmd = match code {
            b'O' => Command::OptNeg { version: c.u32()?, actions: Actions(c.u32()?), protocol: Protocol(c.u32()?) },
            b'D' => {
                let (&stage, rest) = data.split_first().ok_or(DecodeError::Malformed("macros"))?;
                let stage = MacroStage::ALL.into_iter().find(|s| s.command() == stage).ok_or(DecodeError::Malformed("macros"))?;
                c = Cursor::new(rest, "macros");
                let mut pairs = Vec::new();
                while !c.is_empty() {
                    pairs.push((c.str()?, c.str()?));
                }
                Command::Macros { stage, pairs }
            }
            b'C' => Command::Connect { hostname: c.str()?, peer: decode_peer(&mut c)? },
            b'H' => Command::Helo(c.str()?),
            b'M' | b'R' => {
                let mut args = vec![c.str()?];
                while !c.is_empty() {
                    args.push(c.str()?);
                }
                if code == b'M' { Command::Mail(args) } else { Command::Rcpt(args) }
            }
            b'L' => Command::Header { name: c.str()?, value: c.bytes()? },
            b'B' => Command::Body(c.rest()),
            b'T' => Command::Data,
            b'N' => Command::Eoh,
            b'E' => Command::Eom,
            b'A' => Command::Abort,
            b'Q' => Command::Quit,
            other => return Err(DecodeError::UnknownCode(other as char)),
        };
        c.end()?;
        Ok(cmd)
    }
}

fn decode_peer<'a>(c: &mut Cursor<'a>) -> Result<Peer<'a>, DecodeError> {
    let family = c.rest();
    let Some((&family, rest)) = family.split_first() else { return Err(DecodeError::Malformed("connect")) };
    *c = Cursor::new(rest, "connect");
    if family == b'U' {
        return Ok(Peer::Unknown);
    }
    let port = c.u16()?;
    let addr = c.str()?;
    match family {
        b'L' => Ok(Peer::Unix(addr)),
        b'4' | b'6' => {
            let ip: IpAddr = addr.parse().map_err(|_| DecodeError::Malformed("connect"))?;
            Ok(Peer::Inet(SocketAddr::new(ip, port)))
        }
        _ => Err(DecodeError::Malformed("connect")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Framer;
    use super::*;

    fn round_trip(cmd: Command<'_>) {
        let mut wire = Vec::new();
        cmd.encode(&mut wire).unwrap();
        let mut f = Framer::default();
        f.push(&wire);
        let (code, data) = f.next_packet().unwrap().unwrap();
        assert_eq!(Command::decode(code, &data).unwrap(), cmd);
    }

    #[test]
    fn every_command_round_trips() {
        round_trip(Command::OptNeg { version: 6, actions: Actions::ALL, protocol: Protocol::OFFERED });
        round_trip(Command::Macros { stage: MacroStage::Mail, pairs: vec![("i", "4Q2M"), ("{auth_authen}", "bob")] });
        round_trip(Command::Macros { stage: MacroStage::Eoh, pairs: vec![] });
        round_trip(Command::Connect { hostname: "mx.example.org", peer: Peer::Inet("192.0.2.7:4567".parse().unwrap()) });
        round_trip(Command::Connect { hostname: "[2001:db8::1]", peer: Peer::Inet("[2001:db8::1]:25".parse().unwrap()) });
        round_trip(Command::Connect { hostname: "localhost", peer: Peer::Unix("/run/x.sock") });
        round_trip(Command::Connect { hostname: "unknown", peer: Peer::Unknown });
        round_trip(Command::Helo("client.example"));
        round_trip(Command::Mail(vec!["<a@example.org>", "SIZE=100", "BODY=8BITMIME"]));
        round_trip(Command::Mail(vec!["<>"]));
        round_trip(Command::Rcpt(vec!["<b@example.net>"]));
        round_trip(Command::Header { name: "Subject", value: b"hello\r\n\tworld \xe9" });
        round_trip(Command::Header { name: "X-Empty", value: b"" });
        round_trip(Command::Body(b"line\r\n.dot\r\n"));
        for c in [Command::Data, Command::Eoh, Command::Eom, Command::Abort, Command::Quit] {
            round_trip(c);
        }
    }

    #[test]
    fn the_wire_bytes_are_libmilters() {
        let mut w = Vec::new();
        Command::Connect { hostname: "h", peer: Peer::Inet("10.0.0.1:25".parse().unwrap()) }.encode(&mut w).unwrap();
        assert_eq!(w, b"\0\0\0\x0fCh\x004\x00\x1910.0.0.1\0");
        let mut w = Vec::new();
        Command::OptNeg { version: 6, actions: Actions(0x1ff), protocol: Protocol(0x1fffff) }.encode(&mut w).unwrap();
        assert_eq!(w, b"\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff");
        let mut w = Vec::new();
        Command::Macros { stage: MacroStage::Connect, pairs: vec![("j", "mx")] }.encode(&mut w).unwrap();
        assert_eq!(w, b"\0\0\0\x07DCj\0mx\0");
    }

    #[test]
    fn nul_bytes_and_oversized_commands_are_refused() {
        let mut w = Vec::new();
        assert_eq!(Command::Helo("a\0b").encode(&mut w), Err(EncodeError::Nul("HELO name")));
        assert_eq!(Command::Header { name: "X", value: b"\0" }.encode(&mut w), Err(EncodeError::Nul("header value")));
        let long = vec![b'a'; 70_000];
        assert_eq!(Command::Header { name: "X", value: &long }.encode(&mut w), Err(EncodeError::TooLarge("packet")));
        assert!(w.is_empty());
    }

    #[test]
    fn malformed_commands_are_refused() {
        for (code, data) in [
            (b'O', &b"\0\0\0\x06"[..]),
            (b'H', b"no terminator"),
            (b'H', b"a\0trailing"),
            (b'C', b"h\0"),
            (b'C', b"h\x004\x00\x19not an ip\0"),
            (b'C', b"h\0X\0\0a\0"),
            (b'D', b""),
            (b'D', b"Zj\0v\0"),
            (b'D', b"Cj\0"),
            (b'M', b""),
            (b'T', b"x"),
        ] {
            assert!(Command::decode(code, data).is_err(), "{:?} {:?}", code as char, data);
        }
        assert_eq!(Command::decode(b'z', b""), Err(DecodeError::UnknownCode('z')));
    }
}
