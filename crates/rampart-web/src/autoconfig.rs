//! Mail client autoconfiguration: Thunderbird's autoconfig XML, Outlook's autodiscover and an
//! Apple configuration profile. Each names the implicit-TLS ports first (RFC 8314 §3), then
//! the STARTTLS ones, as far as those listeners are on.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::error::ApiResult;
use crate::session::Authed;
use crate::{MailPorts, Services};

pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/.well-known/autoconfig/mail/config-v1.1.xml", get(thunderbird))
        .route("/mail/config-v1.1.xml", get(thunderbird))
        .route("/autodiscover/autodiscover.xml", post(autodiscover))
        .route("/Autodiscover/Autodiscover.xml", post(autodiscover))
}

/// XML text and attribute escaping.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The domain part of an address a client sent, if it looks like one.
fn domain_of(address: &str) -> Option<String> {
    let (_, d) = address.trim().rsplit_once('@')?;
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty() && d.len() <= 253 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then_some(d)
}

#[derive(Deserialize)]
pub struct Email {
    emailaddress: Option<String>,
}

/// (socketType, port) pairs in order of preference.
fn servers(implicit: Option<u16>, starttls: Option<u16>) -> Vec<(&'static str, u16)> {
    implicit.map(|p| ("SSL", p)).into_iter().chain(starttls.map(|p| ("STARTTLS", p))).collect()
}

/// Thunderbird's clientConfig (version 1.1).
fn client_config(host: &str, domain: &str, ports: &MailPorts) -> String {
    let (host, domain) = (esc(host), esc(domain));
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n  <emailProvider id=\"{domain}\">\n    \
         <domain>{domain}</domain>\n    <displayName>{domain}</displayName>\n    <displayShortName>{domain}</displayShortName>\n"
    );
    for (socket, port) in servers(ports.imaps, ports.imap) {
        x += &format!(
            "    <incomingServer type=\"imap\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      \
             <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      \
             <username>%EMAILADDRESS%</username>\n    </incomingServer>\n"
        );
    }
    for (socket, port) in servers(ports.submissions, ports.submission) {
        x += &format!(
            "    <outgoingServer type=\"smtp\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      \
             <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      \
             <username>%EMAILADDRESS%</username>\n    </outgoingServer>\n"
        );
    }
    x += "  </emailProvider>\n</clientConfig>\n";
    x
}

async fn thunderbird(State(s): State<Arc<Services>>, Query(q): Query<Email>) -> Response {
    let domain = q.emailaddress.as_deref().and_then(domain_of).unwrap_or_else(|| s.hostname.clone());
    let xml = client_config(&s.hostname, &domain, &s.ports);
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response()
}

/// The text of the first `<EMailAddress>` element of an autodiscover request.
fn requested_address(body: &str) -> Option<&str> {
    let start = body.find("<EMailAddress>")? + "<EMailAddress>".len();
    let end = body[start..].find("</EMailAddress>")? + start;
    Some(body[start..end].trim())
}

/// Outlook's autodiscover (the 2006a response schema).
async fn autodiscover(State(s): State<Arc<Services>>, body: String) -> Response {
    let address = requested_address(&body).filter(|a| domain_of(a).is_some()).unwrap_or("");
    let host = esc(&s.hostname);
    let mut protocols = String::new();
    let mut add = |kind: &str, port: Option<u16>, ssl: bool| {
        if let Some(port) = port {
            let (ssl, encryption) = if ssl { ("on", "SSL") } else { ("off", "TLS") };
            protocols += &format!(
                "      <Protocol>\n        <Type>{kind}</Type>\n        <Server>{host}</Server>\n        <Port>{port}</Port>\n        \
                 <LoginName>{}</LoginName>\n        <DomainRequired>off</DomainRequired>\n        <SPA>off</SPA>\n        \
                 <SSL>{ssl}</SSL>\n        <Encryption>{encryption}</Encryption>\n        <AuthRequired>on</AuthRequired>\n      </Protocol>\n",
                esc(address)
            );
        }
    };
    add("IMAP", s.ports.imaps, true);
    add("IMAP", s.ports.imap.filter(|_| s.ports.imaps.is_none()), false);
    add("SMTP", s.ports.submissions, true);
    add("SMTP", s.ports.submission.filter(|_| s.ports.submissions.is_none()), false);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  \
         <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    \
         <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n{protocols}    </Account>\n  \
         </Response>\n</Autodiscover>\n"
    );
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], xml).into_response()
}

/// An Apple configuration profile (com.apple.mail.managed) for the logged-in user, without
/// the password: the device asks for it.
pub async fn mobileconfig(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Response> {
    let (_, address) = caller.account()?;
    let (imap_port, imap_ssl) = match (s.ports.imaps, s.ports.imap) {
        (Some(p), _) => (p, true),
        (None, Some(p)) => (p, false),
        (None, None) => (993, true),
    };
    let (smtp_port, smtp_ssl) = match (s.ports.submissions, s.ports.submission) {
        (Some(p), _) => (p, true),
        (None, Some(p)) => (p, false),
        (None, None) => (465, true),
    };
    let b = |v: bool| if v { "<true/>" } else { "<false/>" };
    let id = esc(&format!("{}.mail.{}", reverse(&s.hostname), address.replace(['@', '.'], "-")));
    let (addr, host) = (esc(address), esc(&s.hostname));
    let uuid = uuid_like(&id);
    let plist = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{addr}</string>
      <key>EmailAccountType</key><string>EmailTypeIMAP</string>
      <key>EmailAddress</key><string>{addr}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{imap_port}</integer>
      <key>IncomingMailServerUseSSL</key>{}
      <key>IncomingMailServerUsername</key><string>{addr}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{smtp_port}</integer>
      <key>OutgoingMailServerUseSSL</key>{}
      <key>OutgoingMailServerUsername</key><string>{addr}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadIdentifier</key><string>{id}.account</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{uuid}-0001</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>Mail: {addr}</string>
  <key>PayloadIdentifier</key><string>{id}</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{uuid}-0000</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        b(imap_ssl),
        b(smtp_ssl)
    );
    let disposition = "attachment; filename=\"mail.mobileconfig\"";
    Ok(([(header::CONTENT_TYPE, "application/x-apple-aspen-config"), (header::CONTENT_DISPOSITION, disposition)], plist)
        .into_response())
}

fn reverse(host: &str) -> String {
    host.split('.').rev().collect::<Vec<_>>().join(".")
}

/// A stable identifier in UUID form from the profile's name, so reinstalling replaces it.
fn uuid_like(name: &str) -> String {
    let h = rampart_auth::totp::token_hash(name);
    format!("{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_tls_first() {
        let ports = MailPorts { imaps: Some(993), imap: Some(143), submissions: Some(465), submission: Some(587) };
        let x = client_config("mx.example.test", "example.test", &ports);
        let ssl = x.find("<port>993</port>").unwrap();
        assert!(ssl < x.find("<port>143</port>").unwrap());
        assert!(x.find("<port>465</port>").unwrap() < x.find("<port>587</port>").unwrap());
        assert!(x.contains("<username>%EMAILADDRESS%</username>"));
    }

    #[test]
    fn request_parsing() {
        assert_eq!(domain_of("Bob@Example.TEST"), Some("example.test".into()));
        assert_eq!(domain_of("bob@<x>"), None);
        assert_eq!(requested_address("<Request><EMailAddress> a@b.test </EMailAddress></Request>"), Some("a@b.test"));
        assert_eq!(esc("<a&\"'>"), "&lt;a&amp;&quot;&apos;&gt;");
    }
}
