//! Where an external filter listens and how we reach it: `host:port` over TCP or a Unix socket
//! path (the form `[filter.antivirus] clamd` and `[[filter.milter]] address` take), connected
//! within a timeout. Both clients use one boxed stream type, so tests can also hand them an
//! in-memory duplex.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A connected byte stream to a filter (TCP, Unix socket, or a test's duplex).
/// Sync as well as Send: an SMTP session holds its milters and is shared by reference across
/// awaits, so everything in it must be Sync (tokio's sockets are).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// A filter's address as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port` or `[v6]:port`; the host may be a name (resolved at each connect).
    Tcp(String),
    /// An absolute or relative path to a Unix socket.
    Unix(PathBuf),
}

impl Address {
    /// A value containing `/` is a socket path (the config's documented rule: socket paths are
    /// written as paths, TCP addresses always end in `:port`); `unix:PATH` is accepted too, as
    /// Postfix writes it. Anything else must be `host:port`.
    pub fn parse(s: &str) -> Option<Address> {
        if let Some(path) = s.strip_prefix("unix:") {
            return (!path.is_empty()).then(|| Address::Unix(path.into()));
        }
        if s.contains('/') {
            return Some(Address::Unix(s.into()));
        }
        let (host, port) = s.rsplit_once(':')?;
        let host_ok = !host.is_empty() && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        (host_ok && port.parse::<u16>().is_ok()).then(|| Address::Tcp(s.to_string()))
    }

    /// Connects within `timeout`. Small writes are sent at once (no Nagle delay): both
    /// protocols alternate short commands with waiting for a reply.
    pub async fn connect(&self, timeout: Duration) -> io::Result<Box<dyn Stream>> {
        let connect = async {
            Ok::<Box<dyn Stream>, io::Error>(match self {
                Address::Tcp(hostport) => {
                    let s = TcpStream::connect(hostport.as_str()).await?;
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
                Address::Unix(path) => Box::new(UnixStream::connect(path).await?),
            })
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(s) => f.write_str(s),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_configured() {
        assert_eq!(Address::parse("127.0.0.1:3310"), Some(Address::Tcp("127.0.0.1:3310".into())));
        assert_eq!(Address::parse("[::1]:11332"), Some(Address::Tcp("[::1]:11332".into())));
        assert_eq!(Address::parse("clamd.internal:3310"), Some(Address::Tcp("clamd.internal:3310".into())));
        assert_eq!(Address::parse("/run/clamav/clamd.ctl"), Some(Address::Unix("/run/clamav/clamd.ctl".into())));
        assert_eq!(Address::parse("unix:milter.sock"), Some(Address::Unix("milter.sock".into())));
        for bad in ["", "127.0.0.1", "host:", ":25", "::1:25", "host:99999", "unix:"] {
            assert_eq!(Address::parse(bad), None, "{bad}");
        }
    }
}
