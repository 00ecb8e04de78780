//! The client side of SMTP, for outbound delivery: replies, EHLO extensions, STARTTLS and
//! DATA with dot-stuffing. Every read has the command timeout and a size cap, so a hostile or
//! broken server cannot hold a worker or its memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::conn::Io;
pub use rampart_smtp_proto::Response;
use rampart_smtp_proto::{ResponseError, ResponseReader};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out waiting for the server")]
    Timeout,
    #[error("protocol error: {0}")]
    Protocol(#[from] ResponseError),
    #[error("protocol error: the server closed the connection")]
    Closed,
    #[error("TLS: {0}")]
    Tls(String),
}

/// How a TLS handshake's certificate check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    pub version: String,
    pub cipher: String,
    /// None when the certificate verified; else why it did not.
    pub unverified: Option<String>,
}

/// Checks certificates with webpki and records the result. With `require_valid` false an
/// invalid certificate is accepted (opportunistic TLS, RFC 7435): encryption against passive
/// listeners is still better than clear text, and the result is logged.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    require_valid: bool,
    failure: Mutex<Option<String>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(e) if !self.require_valid => {
                *self.failure.lock().expect("verifier lock") = Some(e.to_string());
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a client needs to make TLS connections: trust anchors and an optional client
/// certificate.
#[derive(Clone)]
pub struct TlsClient {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    /// DANE (RFC 7672): the host's TLSA records decide instead of the trust anchors.
    dane: Option<Arc<crate::sts::dane::DaneVerifier>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, Arc<rustls::pki_types::PrivateKeyDer<'static>>)>,
}

impl TlsClient {
    pub fn new(roots: Arc<rustls::RootCertStore>) -> Result<TlsClient, String> {
        let provider = Arc::new(rampart_tls::provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TlsClient { webpki, dane: None, client_cert: None })
    }

    pub fn with_client_cert(mut self, chain: Vec<CertificateDer<'static>>, key: rustls::pki_types::PrivateKeyDer<'static>) -> TlsClient {
        self.client_cert = Some((chain, Arc::new(key)));
        self
    }

    /// This client, checking certificates against a host's TLSA records (DANE) instead.
    /// `expanded`: the end of the MX host's CNAME chain, where the records were found: a
    /// DANE-TA chain may name it instead of the host (RFC 7672 §2.2.3, §3.2.2).
    pub fn with_dane(&self, records: Vec<crate::sts::dane::Tlsa>, expanded: Option<String>) -> TlsClient {
        TlsClient { dane: Some(Arc::new(crate::sts::dane::DaneVerifier::new(records).also_named(expanded))), ..self.clone() }
    }

    fn config(&self, require_valid: bool) -> Result<(Arc<ClientConfig>, Arc<RecordingVerifier>), ClientError> {
        let inner: Arc<dyn ServerCertVerifier> = match &self.dane {
            Some(d) => d.clone(),
            None => self.webpki.clone(),
        };
        let verifier = Arc::new(RecordingVerifier { inner, require_valid, failure: Mutex::new(None) });
        let builder = ClientConfig::builder_with_provider(Arc::new(rampart_tls::provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let config = match &self.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok((Arc::new(config), verifier))
    }

    /// A client configuration that refuses any certificate not valid for the name (HTTPS
    /// policy fetches).
    pub fn verifying_config(&self) -> Result<Arc<ClientConfig>, ClientError> {
        Ok(self.config(true)?.0)
    }

    /// Runs a handshake on `io` for `host`.
    pub async fn handshake(&self, io: Box<dyn Io>, host: &str, require_valid: bool, timeout: Duration) -> Result<(Box<dyn Io>, TlsOutcome), ClientError> {
        let (config, verifier) = self.config(require_valid)?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| ClientError::Tls(format!("{host}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::time::timeout(timeout, connector.connect(name, io))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let conn = stream.get_ref().1;
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher = conn.negotiated_cipher_suite().map_or_else(String::new, |s| format!("{:?}", s.suite()));
        let unverified = verifier.failure.lock().expect("verifier lock").take();
        Ok((Box::new(stream), TlsOutcome { version, cipher, unverified }))
    }
}

pub struct Client {
    io: Box<dyn Io>,
    reader: ResponseReader,
    timeout: Duration,
    /// EHLO keywords (uppercase) and their parameters.
    pub extensions: HashMap<String, String>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, connect_timeout: Duration, timeout: Duration) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await.map_err(|_| ClientError::Timeout)??;
        let _ = stream.set_nodelay(true);
        Ok(Client { io: Box::new(stream), reader: ResponseReader::default(), timeout, extensions: HashMap::new() })
    }

    /// Replaces the stream with its TLS upgrade; buffered input from before is dropped, as
    /// anything the server sent before the handshake must not be read as if it were inside TLS.
    pub async fn upgrade(&mut self, tls: &TlsClient, host: &str, require_valid: bool) -> Result<TlsOutcome, ClientError> {
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())));
        self.reader.clear();
        let (io, outcome) = tls.handshake(plain, host, require_valid, self.timeout).await?;
        self.io = io;
        self.extensions.clear();
        Ok(outcome)
    }

    pub async fn read_response(&mut self) -> Result<Response, ClientError> {
        loop {
            if let Some(r) = self.reader.next_reply()? {
                return Ok(r);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(self.timeout, self.io.read(&mut chunk)).await.map_err(|_| ClientError::Timeout)??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.reader.push(&chunk[..n]);
        }
    }

    pub async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        tokio::time::timeout(self.timeout, async {
            self.io.write_all(data).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout)??;
        Ok(())
    }

    pub async fn command(&mut self, line: &str) -> Result<Response, ClientError> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_response().await
    }

    /// EHLO, remembering the extensions; falls back to HELO when EHLO is refused.
    pub async fn ehlo(&mut self, name: &str) -> Result<Response, ClientError> {
        let r = self.command(&format!("EHLO {name}")).await?;
        if r.code == 250 {
            self.extensions = r
                .lines
                .iter()
                .skip(1)
                .map(|l| {
                    let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                    (k.to_ascii_uppercase(), v.to_string())
                })
                .collect();
            return Ok(r);
        }
        self.extensions.clear();
        self.command(&format!("HELO {name}")).await
    }

    pub fn has(&self, extension: &str) -> bool {
        self.extensions.contains_key(extension)
    }

    /// Sends message content, dot-stuffed, and the terminating `.`.
    pub async fn send_data(&mut self, message: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
        let mut at_line_start = true;
        for &b in message {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_line_start = b == b'\n';
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out).await
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command("QUIT")).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_and_dot_stuffing() {
        let (mut server, client) = tokio::io::duplex(4096);
        let mut c = Client { io: Box::new(client), reader: ResponseReader::default(), timeout: Duration::from_secs(5), extensions: HashMap::new() };
        server.write_all(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n").await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.example", "PIPELINING", "SIZE 1000"]);
        c.send_data(b".hidden\r\nline\r\n..two").await.unwrap();
        let mut got = vec![0u8; 64];
        let n = server.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"..hidden\r\nline\r\n...two\r\n.\r\n");
    }
}
