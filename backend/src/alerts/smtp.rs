//! A small SMTP client (RFC 5321) for the e-mail channel: one message per connection to one
//! relay, `EHLO`, `AUTH PLAIN` (or `LOGIN` when only that is offered), the envelope, a
//! `text/plain` UTF-8 message (RFC 5322 headers, dot-stuffed), `QUIT`; every read and write
//! under a timeout.
//!
//! The connection is plain TCP, TCP upgraded with `STARTTLS` (RFC 3207), or TLS from the
//! start (port 465), through rustls with the system's roots plus those the channel adds; the
//! relay's name is checked against its certificate. Whether credentials may travel in clear is
//! the caller's decision. It does not queue, retry or look up MX records: the relay does that.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Every connect, read and write: a relay that stalls must not hold a delivery worker.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 5321 allows 512 bytes per reply line; some servers write longer texts.
const MAX_REPLY_LINE_BYTES: usize = 4096;
const MAX_REPLY_LINES: usize = 100;
/// RFC 5322's hard limit on a line, without its CRLF.
const MAX_LINE_BYTES: usize = 998;
/// Keeps the `Subject` header within the line limit whatever the rule and labels are.
const MAX_SUBJECT_CHARS: usize = 250;
/// What `EHLO` says we are; the relay only logs it.
const CLIENT_NAME: &str = "vigil";

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Security {
    None,
    StartTls,
    Implicit,
}

/// Where the message goes, how, and the login if the relay wants one.
pub(super) struct Relay<'a> {
    pub host: &'a str,
    pub port: u16,
    pub credentials: Option<Credentials<'a>>,
    pub security: Security,
    /// Certificates (PEM) trusted besides the system's, for a relay with a private CA.
    pub extra_roots_pem: Option<&'a str>,
}

pub(super) struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// One plain-text message; the addresses are bare (`alerts@example.com`) and were checked with
/// [`check_address`].
pub(super) struct Email<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SendMailError {
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the connection to the mail server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the mail server did not answer within {} s", IO_TIMEOUT.as_secs())]
    TimedOut,
    /// A reply code other than the expected one: 4xx is transient, 5xx permanent.
    #[error("the mail server answered {code} to {command}: {text}")]
    Reply { command: String, code: u16, text: String },
    #[error("the mail server's answer is not SMTP: {0}")]
    Malformed(String),
    #[error("the mail server offers no login this client speaks (AUTH PLAIN or LOGIN)")]
    NoLoginMechanism,
    #[error("the mail server does not offer STARTTLS")]
    NoStartTls,
    #[error("the TLS handshake with the mail server failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("the trusted certificates cannot be read: {0}")]
    Roots(String),
}

/// Checks a bare address for the envelope and the headers: one `@` between a non-empty local
/// part and domain, printable ASCII without the characters that would end or split an SMTP
/// command or a header (`<`, `>`, `,`, quotes, spaces). Names (`Vigil <a@b>`) and
/// internationalised addresses (which need `SMTPUTF8`) are refused.
pub(super) fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("must not be empty");
    }
    if address.len() > 254 {
        return Err("is longer than 254 characters");
    }
    if !address.bytes().all(|byte| byte.is_ascii_graphic() && !b"<>()[],;:\"\\".contains(&byte)) {
        return Err("must be a bare address (local@domain) of printable ASCII, without a name");
    }
    match address.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err("must be one local part and one domain around an @"),
    }
}

/// Sends one message: connects, says hello, logs in when there are credentials, hands over the
/// envelope and the message, says goodbye. Every recipient must be accepted, or nothing is sent
/// (as Alertmanager does), so that a retry does not send twice to the others.
pub(super) async fn send(relay: &Relay<'_>, email: &Email<'_>) -> Result<(), SendMailError> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((relay.host, relay.port)))
        .await
        .map_err(|_| SendMailError::TimedOut)?
        .map_err(|source| SendMailError::Connect { host: relay.host.to_owned(), port: relay.port, source })?;
    match relay.security {
        Security::None => {
            let mut session = Session::new(stream);
            session.expect("the greeting", &[220]).await?;
            let extensions = session.hello().await?;
            deliver(session, &extensions, relay, email).await
        }
        Security::Implicit => {
            let mut session = Session::new(handshake(stream, relay).await?);
            session.expect("the greeting", &[220]).await?;
            let extensions = session.hello().await?;
            deliver(session, &extensions, relay, email).await
        }
        Security::StartTls => {
            let mut session = Session::new(stream);
            session.expect("the greeting", &[220]).await?;
            if !session.hello().await?.start_tls {
                return Err(SendMailError::NoStartTls);
            }
            session.command("STARTTLS", "STARTTLS", &[220]).await?;
            // Nothing may come between the 220 and the handshake (RFC 3207 section 4.2).
            if !session.stream.buffer().is_empty() {
                return Err(SendMailError::Malformed("the server wrote more after its STARTTLS reply".to_owned()));
            }
            let mut session = Session::new(handshake(session.stream.into_inner(), relay).await?);
            // What was said before TLS counts for nothing: hello again.
            let extensions = session.hello().await?;
            deliver(session, &extensions, relay, email).await
        }
    }
}

/// The TLS client side over `stream`, verifying the relay's certificate and name.
async fn handshake(
    stream: TcpStream,
    relay: &Relay<'_>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SendMailError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is left out, as reqwest does.
        let _ = roots.add(certificate);
    }
    if let Some(pem) = relay.extra_roots_pem {
        for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let certificate = certificate.map_err(|error| SendMailError::Roots(error.to_string()))?;
            roots.add(certificate).map_err(|error| SendMailError::Roots(error.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| SendMailError::Roots(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(relay.host.to_owned())
        .map_err(|error| SendMailError::Roots(format!("{:?} is not a server name: {error}", relay.host)))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    tokio::time::timeout(IO_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| SendMailError::TimedOut)?
        .map_err(SendMailError::Tls)
}

/// After the hello: the login, the envelope, the message, the goodbye.
async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
    mut session: Session<S>,
    extensions: &Extensions,
    relay: &Relay<'_>,
    email: &Email<'_>,
) -> Result<(), SendMailError> {
    if let Some(credentials) = &relay.credentials {
        session.log_in(credentials, extensions).await?;
    }
    let message = compose(email, OffsetDateTime::now_utc(), &message_id(email.from), extensions.eight_bit_mime);
    let body_parameter = if message.eight_bit { " BODY=8BITMIME" } else { "" };
    session.command(&format!("MAIL FROM:<{}>{body_parameter}", email.from), "MAIL FROM", &[250]).await?;
    for recipient in email.to {
        let command = format!("RCPT TO:<{recipient}>");
        session.command(&command, &command, &[250, 251]).await?;
    }
    session.command("DATA", "DATA", &[354]).await?;
    session.write(&dot_stuffed(&message.text)).await?;
    session.expect("the message", &[250]).await?;
    // The message is accepted: a failed goodbye must not turn into a retry that sends it twice.
    let _ = session.command("QUIT", "QUIT", &[221]).await;
    Ok(())
}

/// What `EHLO` told about the server.
#[derive(Debug, Default)]
struct Extensions {
    login_mechanisms: Vec<String>,
    eight_bit_mime: bool,
    start_tls: bool,
}

impl Extensions {
    /// The lines after the first of a `250` reply to `EHLO`: `AUTH PLAIN LOGIN`, `8BITMIME`, ...
    fn parse(lines: &[String]) -> Self {
        let mut extensions = Self::default();
        for line in lines.iter().skip(1) {
            let mut words = line.split([' ', '=']).filter(|word| !word.is_empty());
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "AUTH" => extensions.login_mechanisms.extend(words.map(str::to_ascii_uppercase)),
                "8BITMIME" => extensions.eight_bit_mime = true,
                "STARTTLS" => extensions.start_tls = true,
                _ => {}
            }
        }
        extensions
    }

    fn offers_login(&self, mechanism: &str) -> bool {
        self.login_mechanisms.iter().any(|offered| offered == mechanism)
    }
}

/// A reply: its code and the text of each line.
#[derive(Debug, PartialEq)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// One line of a reply: `250-text` (more follow) or `250 text` (the last).
fn parse_reply_line(line: &str) -> Result<(u16, bool, &str), SendMailError> {
    let malformed = || SendMailError::Malformed(line.chars().take(100).collect());
    let code = line.get(..3).filter(|code| code.bytes().all(|byte| byte.is_ascii_digit())).ok_or_else(malformed)?;
    let code: u16 = code.parse().map_err(|_| malformed())?;
    match line.as_bytes().get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(malformed()),
    }
}

struct Session<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S) -> Self {
        Self { stream: BufReader::new(stream) }
    }

    async fn read_reply(&mut self) -> Result<Reply, SendMailError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let mut limited = (&mut self.stream).take(MAX_REPLY_LINE_BYTES as u64);
            let read = tokio::time::timeout(IO_TIMEOUT, limited.read_until(b'\n', &mut line))
                .await
                .map_err(|_| SendMailError::TimedOut)??;
            if read == 0 {
                return Err(SendMailError::Malformed("the server closed the connection".to_owned()));
            }
            if line.last() != Some(&b'\n') {
                return Err(SendMailError::Malformed(format!(
                    "a reply line is longer than {MAX_REPLY_LINE_BYTES} bytes"
                )));
            }
            let line = String::from_utf8_lossy(&line);
            let (code, last, text) = parse_reply_line(line.trim_end_matches(['\r', '\n']))?;
            lines.push(text.trim().to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(SendMailError::Malformed(format!("a reply has more than {MAX_REPLY_LINES} lines")));
            }
        }
    }

    async fn write(&mut self, text: &str) -> Result<(), SendMailError> {
        let stream = self.stream.get_mut();
        let write = async {
            stream.write_all(text.as_bytes()).await?;
            stream.flush().await
        };
        tokio::time::timeout(IO_TIMEOUT, write).await.map_err(|_| SendMailError::TimedOut)??;
        Ok(())
    }

    /// Reads a reply and checks its code; `what` names the step in the error.
    async fn expect(&mut self, what: &str, expected: &[u16]) -> Result<Reply, SendMailError> {
        let reply = self.read_reply().await?;
        if expected.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(SendMailError::Reply { command: what.to_owned(), code: reply.code, text: reply.text() })
        }
    }

    /// Sends a command line and checks the reply; `what` names it in errors, without secrets.
    async fn command(&mut self, line: &str, what: &str, expected: &[u16]) -> Result<Reply, SendMailError> {
        self.write(&format!("{line}\r\n")).await?;
        self.expect(what, expected).await
    }

    /// `EHLO`, or `HELO` when the server does not know `EHLO` (RFC 5321 section 3.2).
    async fn hello(&mut self) -> Result<Extensions, SendMailError> {
        match self.command(&format!("EHLO {CLIENT_NAME}"), "EHLO", &[250]).await {
            Ok(reply) => Ok(Extensions::parse(&reply.lines)),
            Err(SendMailError::Reply { code: 500..=504, .. }) => {
                self.command(&format!("HELO {CLIENT_NAME}"), "HELO", &[250]).await?;
                Ok(Extensions::default())
            }
            Err(error) => Err(error),
        }
    }

    /// `AUTH PLAIN` with the initial response (RFC 4616, 4954), else `AUTH LOGIN`.
    async fn log_in(&mut self, credentials: &Credentials<'_>, extensions: &Extensions) -> Result<(), SendMailError> {
        if extensions.offers_login("PLAIN") {
            let response = BASE64.encode(format!("\0{}\0{}", credentials.username, credentials.password));
            self.command(&format!("AUTH PLAIN {response}"), "AUTH PLAIN", &[235]).await?;
        } else if extensions.offers_login("LOGIN") {
            self.command("AUTH LOGIN", "AUTH LOGIN", &[334]).await?;
            self.command(&BASE64.encode(credentials.username), "AUTH LOGIN (the user name)", &[334]).await?;
            self.command(&BASE64.encode(credentials.password), "AUTH LOGIN (the password)", &[235]).await?;
        } else {
            return Err(SendMailError::NoLoginMechanism);
        }
        Ok(())
    }
}

/// A unique `Message-ID` in the sender's domain.
fn message_id(from: &str) -> String {
    let domain = from.rsplit_once('@').map_or(CLIENT_NAME, |(_, domain)| domain);
    let mut random = [0u8; 12];
    let unique = match getrandom::fill(&mut random) {
        Ok(()) => random.iter().map(|byte| format!("{byte:02x}")).collect::<String>(),
        // Without randomness the clock alone still tells messages of one sender apart.
        Err(_) => OffsetDateTime::now_utc().unix_timestamp_nanos().to_string(),
    };
    format!("<{unique}@{domain}>")
}

/// The message as it goes after `DATA` (before dot-stuffing), and whether its body is 8-bit.
struct Message {
    text: String,
    eight_bit: bool,
}

/// Headers and body with CRLF line ends. The body goes as it is when it is ASCII, as 8-bit when
/// the server takes `8BITMIME`, and quoted-printable otherwise or when a line is too long.
fn compose(email: &Email<'_>, date: OffsetDateTime, message_id: &str, eight_bit_mime: bool) -> Message {
    let body = email.body.trim_end_matches(['\r', '\n']);
    let body_lines: Vec<&str> = body.split("\r\n").flat_map(|line| line.split(['\n', '\r'])).collect();
    let fits = body_lines.iter().all(|line| line.len() <= MAX_LINE_BYTES) && !body.contains('\0');
    let (encoding, body, eight_bit) = if fits && body.is_ascii() {
        ("7bit", body_lines.join("\r\n"), false)
    } else if fits && eight_bit_mime {
        ("8bit", body_lines.join("\r\n"), true)
    } else {
        ("quoted-printable", quoted_printable(&body_lines), false)
    };
    let date = date.format(&Rfc2822).unwrap_or_default();
    let mut text = String::new();
    text.push_str(&format!("From: {}\r\n", email.from));
    text.push_str(&address_header("To", email.to));
    text.push_str(&format!("Subject: {}\r\n", encoded_subject(email.subject)));
    text.push_str(&format!("Date: {date}\r\n"));
    text.push_str(&format!("Message-ID: {message_id}\r\n"));
    // RFC 3834: vacation responders and the like must not answer an alert.
    text.push_str("Auto-Submitted: auto-generated\r\n");
    text.push_str("MIME-Version: 1.0\r\n");
    text.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    text.push_str(&format!("Content-Transfer-Encoding: {encoding}\r\n"));
    text.push_str("\r\n");
    text.push_str(&body);
    text.push_str("\r\n");
    Message { text, eight_bit }
}

/// `To: a@example.com, b@example.com`, folded before a line passes 78 characters.
fn address_header(name: &str, addresses: &[String]) -> String {
    let mut header = format!("{name}:");
    let mut line_length = header.len();
    for (index, address) in addresses.iter().enumerate() {
        let separator = if index + 1 < addresses.len() { "," } else { "" };
        if index > 0 && line_length + 1 + address.len() + separator.len() > 78 {
            header.push_str("\r\n");
            line_length = 0;
        }
        header.push(' ');
        header.push_str(address);
        header.push_str(separator);
        line_length += 1 + address.len() + separator.len();
    }
    header.push_str("\r\n");
    header
}

/// The subject without control characters (no header injection), cut to a bounded length, as
/// RFC 2047 encoded words when it is not ASCII.
fn encoded_subject(subject: &str) -> String {
    let subject: String = subject
        .chars()
        .map(|character| if character.is_control() { ' ' } else { character })
        .take(MAX_SUBJECT_CHARS)
        .collect();
    if subject.is_ascii() {
        return subject;
    }
    // An encoded word is at most 75 characters: 12 of syntax and 60 of base64 for 45 bytes.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for character in subject.chars() {
        if chunk.len() + character.len_utf8() > 45 {
            words.push(format!("=?utf-8?B?{}?=", BASE64.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(character);
    }
    if !chunk.is_empty() {
        words.push(format!("=?utf-8?B?{}?=", BASE64.encode(&chunk)));
    }
    words.join("\r\n ")
}

/// Quoted-printable (RFC 2045 section 6.7) of text lines: encoded lines of at most 76
/// characters, soft breaks where a line was longer.
fn quoted_printable(lines: &[&str]) -> String {
    let mut encoded_lines = Vec::with_capacity(lines.len());
    for line in lines {
        let mut encoded = String::new();
        let mut length = 0;
        let bytes = line.as_bytes();
        for (index, &byte) in bytes.iter().enumerate() {
            let at_end = index + 1 == bytes.len();
            let literal = (byte.is_ascii_graphic() && byte != b'=') || (matches!(byte, b' ' | b'\t') && !at_end);
            let token = if literal { (byte as char).to_string() } else { format!("={byte:02X}") };
            // Leave room for the `=` of a soft break.
            if length + token.len() > 75 {
                encoded.push_str("=\r\n");
                length = 0;
            }
            encoded.push_str(&token);
            length += token.len();
        }
        encoded_lines.push(encoded);
    }
    encoded_lines.join("\r\n")
}

/// The message with a dot doubled at the start of each line (RFC 5321 section 4.5.2) and the
/// end-of-data line; `message` ends with CRLF.
fn dot_stuffed(message: &str) -> String {
    let mut stuffed = String::with_capacity(message.len() + 16);
    for line in message.strip_suffix("\r\n").unwrap_or(message).split("\r\n") {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
        stuffed.push_str("\r\n");
    }
    stuffed.push_str(".\r\n");
    stuffed
}

/// The SMTP sink the tests send to, shared with the API tests.
#[cfg(test)]
#[path = "../../tests/support/smtp_sink.rs"]
pub(super) mod sink;

#[cfg(test)]
pub(super) mod tests {
    use std::path::PathBuf;
    use std::process::Stdio;

    use serde_json::json;

    pub(in crate::alerts) use super::sink::SmtpSink;
    use super::*;

    /// Bounds a test: a server that stops answering fails it instead of holding the suite.
    pub(in crate::alerts) async fn within_a_minute<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(60), future).await.expect("the test finished within 60 s")
    }

    fn recipients(addresses: &[&str]) -> Vec<String> {
        addresses.iter().map(|address| (*address).to_owned()).collect()
    }

    /// The part of a message after its headers.
    fn body_of(content: &str) -> &str {
        content.split_once("\r\n\r\n").or_else(|| content.split_once("\n\n")).unwrap().1
    }

    #[test]
    fn replies_are_parsed_line_by_line() {
        assert_eq!(parse_reply_line("250-sink.test").unwrap(), (250, false, "sink.test"));
        assert_eq!(parse_reply_line("250 OK").unwrap(), (250, true, "OK"));
        assert_eq!(parse_reply_line("354").unwrap(), (354, true, ""));
        assert!(parse_reply_line("25O OK").is_err());
        assert!(parse_reply_line("250:OK").is_err());
        let extensions = Extensions::parse(&recipients(&[
            "sink.test",
            "SIZE 33554432",
            "8BITMIME",
            "AUTH=LOGIN",
            "AUTH PLAIN LOGIN",
        ]));
        assert!(extensions.eight_bit_mime);
        assert!(extensions.offers_login("PLAIN") && extensions.offers_login("LOGIN"));
    }

    #[test]
    fn addresses_that_could_break_a_command_or_header_are_refused() {
        assert!(check_address("oncall@example.com").is_ok());
        assert!(check_address("first.last+alerts@sub.example.com").is_ok());
        for bad in [
            "",
            "oncall",
            "@example.com",
            "oncall@",
            "a@b@c",
            "Vigil <a@b>",
            "a@b>\r\nDATA",
            "a b@c",
            "ünï@example.com",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn lines_starting_with_a_dot_are_doubled() {
        assert_eq!(dot_stuffed("a\r\n.\r\n..b\r\nc.\r\n"), "a\r\n..\r\n...b\r\nc.\r\n.\r\n");
    }

    #[test]
    fn quoted_printable_escapes_and_wraps() {
        assert_eq!(quoted_printable(&["café = ok ", "\tx"]), "caf=C3=A9 =3D ok=20\r\n\tx");
        let long = "é".repeat(100);
        let encoded = quoted_printable(&[&long]);
        assert!(encoded.split("\r\n").all(|line| line.len() <= 76), "{encoded}");
        let decoded: Vec<u8> = {
            let joined = encoded.replace("=\r\n", "");
            let mut bytes = Vec::new();
            let mut rest = joined.as_bytes();
            while let [first, tail @ ..] = rest {
                if *first == b'=' {
                    bytes.push(u8::from_str_radix(std::str::from_utf8(&tail[..2]).unwrap(), 16).unwrap());
                    rest = &tail[2..];
                } else {
                    bytes.push(*first);
                    rest = tail;
                }
            }
            bytes
        };
        assert_eq!(String::from_utf8(decoded).unwrap(), long);
    }

    #[test]
    fn subjects_are_one_header_and_encoded_when_not_ascii() {
        assert_eq!(
            encoded_subject("[FIRING] disk\r\nBcc: victim@example.com"),
            "[FIRING] disk  Bcc: victim@example.com"
        );
        let encoded = encoded_subject("[FIRING] température élevée sur le serveur de base de données");
        let words: Vec<&str> = encoded.split("\r\n ").collect();
        assert!(words.len() > 1 && words.iter().all(|word| word.starts_with("=?utf-8?B?") && word.len() <= 75));
        let decoded: String = words
            .iter()
            .map(|word| {
                let base64 = word.trim_start_matches("=?utf-8?B?").trim_end_matches("?=");
                String::from_utf8(BASE64.decode(base64).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(decoded, "[FIRING] température élevée sur le serveur de base de données");
    }

    #[test]
    fn messages_pick_the_lightest_encoding_the_server_takes() {
        let to = recipients(&["a@example.com"]);
        let date = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let email = |body| Email { from: "vigil@example.com", to: &to, subject: "s", body };
        let ascii = compose(&email("plain\nascii"), date, "<id@example.com>", false);
        assert!(ascii.text.contains("Content-Transfer-Encoding: 7bit\r\n") && !ascii.eight_bit);
        assert!(ascii.text.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"), "{}", ascii.text);
        assert!(ascii.text.ends_with("\r\n\r\nplain\r\nascii\r\n"));
        let accented = compose(&email("été"), date, "<id@example.com>", true);
        assert!(accented.text.contains("Content-Transfer-Encoding: 8bit\r\n") && accented.eight_bit);
        let old_server = compose(&email("été"), date, "<id@example.com>", false);
        assert!(old_server.text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        assert!(old_server.text.ends_with("\r\n\r\n=C3=A9t=C3=A9\r\n"));
        let long_line = "x".repeat(2000);
        let long = compose(&email(&long_line), date, "<id@example.com>", true);
        assert!(long.text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        assert!(long.text.split("\r\n").all(|line| line.len() <= MAX_LINE_BYTES));
        let many = recipients(&["first-recipient@example.com", "second-recipient@example.com", "third@example.com"]);
        let header = address_header("To", &many);
        assert_eq!(header, "To: first-recipient@example.com, second-recipient@example.com,\r\n third@example.com\r\n");
    }

    #[tokio::test]
    async fn plain_smtp_delivers_the_message_with_dotted_lines_intact() {
        within_a_minute(async {
            let sink = SmtpSink::start(json!({})).await;
            let to = recipients(&["oncall@example.com", "team@example.com"]);
            let body = "first line\n.\n.starts with a dot\n..two dots\nlast line";
            let email = Email { from: "vigil@example.com", to: &to, subject: "[FIRING] disk full", body };
            let relay = Relay {
                host: "127.0.0.1",
                port: sink.port,
                credentials: None,
                security: Security::None,
                extra_roots_pem: None,
            };
            send(&relay, &email).await.unwrap();
            let messages = sink.messages();
            assert_eq!(messages.len(), 1);
            let message = &messages[0];
            assert_eq!(message["mail_from"], "vigil@example.com");
            assert_eq!(message["rcpt_tos"], json!(["oncall@example.com", "team@example.com"]));
            let content = message["content"].as_str().unwrap();
            assert!(content.contains("From: vigil@example.com\r\n"), "{content}");
            assert!(content.contains("To: oncall@example.com, team@example.com\r\n"), "{content}");
            assert!(content.contains("Subject: [FIRING] disk full\r\n"), "{content}");
            assert!(content.contains("Message-ID: <") && content.contains("@example.com>\r\n"), "{content}");
            assert_eq!(body_of(content), "first line\r\n.\r\n.starts with a dot\r\n..two dots\r\nlast line\r\n");
        })
        .await;
    }

    #[tokio::test]
    async fn a_refused_recipient_is_a_permanent_reply_and_a_deferred_one_transient() {
        within_a_minute(async {
            let sink = SmtpSink::start(json!({"refuse": ["nobody@example.com"], "defer": ["later@example.com"]})).await;
            let relay = Relay {
                host: "127.0.0.1",
                port: sink.port,
                credentials: None,
                security: Security::None,
                extra_roots_pem: None,
            };
            for (recipient, expected_code) in [("nobody@example.com", 550), ("later@example.com", 451)] {
                let to = recipients(&["oncall@example.com", recipient]);
                let email = Email { from: "vigil@example.com", to: &to, subject: "s", body: "b" };
                match send(&relay, &email).await {
                    Err(SendMailError::Reply { command, code, .. }) => {
                        assert_eq!(code, expected_code);
                        assert_eq!(command, format!("RCPT TO:<{recipient}>"));
                    }
                    other => panic!("expected a {expected_code} reply, got {other:?}"),
                }
            }
            assert!(sink.messages().is_empty(), "nothing is sent when a recipient is refused");
        })
        .await;
    }

    #[tokio::test]
    async fn login_uses_plain_or_else_login_and_a_wrong_password_is_refused() {
        within_a_minute(async {
            let to = recipients(&["oncall@example.com"]);
            let email = Email { from: "vigil@example.com", to: &to, subject: "s", body: "b" };
            for (no_plain, mechanism) in [(false, "PLAIN"), (true, "LOGIN")] {
                let sink = SmtpSink::start(json!({"login": ["vigil", "s3cret"], "no_plain": no_plain})).await;
                let credentials = Credentials { username: "vigil", password: "s3cret" };
                let relay = Relay {
                    host: "127.0.0.1",
                    port: sink.port,
                    credentials: Some(credentials),
                    security: Security::None,
                    extra_roots_pem: None,
                };
                send(&relay, &email).await.unwrap();
                assert_eq!(sink.messages()[0]["login"], json!({"user": "vigil", "mechanism": mechanism}));

                let wrong = Credentials { username: "vigil", password: "guess" };
                let relay = Relay {
                    host: "127.0.0.1",
                    port: sink.port,
                    credentials: Some(wrong),
                    security: Security::None,
                    extra_roots_pem: None,
                };
                match send(&relay, &email).await {
                    Err(SendMailError::Reply { code: 535, command, .. }) => assert!(command.starts_with("AUTH")),
                    other => panic!("expected 535, got {other:?}"),
                }
                let anonymous = Relay {
                    host: "127.0.0.1",
                    port: sink.port,
                    credentials: None,
                    security: Security::None,
                    extra_roots_pem: None,
                };
                match send(&anonymous, &email).await {
                    Err(SendMailError::Reply { code: 530, command, .. }) => assert_eq!(command, "MAIL FROM"),
                    other => panic!("expected 530 (authentication required), got {other:?}"),
                }
                assert_eq!(sink.messages().len(), 1);
            }
        })
        .await;
    }

    /// A certificate authority, and a certificate for `localhost` it signed with its key, in
    /// `directory`: (authority, certificate, key).
    fn certificates(directory: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
        let path = |name: &str| directory.join(name);
        let openssl = |arguments: &[&str]| {
            let status = std::process::Command::new("openssl")
                .current_dir(directory)
                .args(arguments)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {arguments:?}");
        };
        std::fs::write(path("leaf.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test authority",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ]);
        (path("ca.pem"), path("cert.pem"), path("key.pem"))
    }

    #[tokio::test]
    async fn starttls_protects_the_login_and_the_message_and_the_relay_is_verified() {
        within_a_minute(async {
            let directory = tempfile::tempdir().unwrap();
            let (authority, certificate, key) = certificates(directory.path());
            let sink = SmtpSink::start(json!({"login": ["vigil", "s3cret"], "tls": [certificate, key]})).await;
            let pem = std::fs::read_to_string(&authority).unwrap();
            let to = recipients(&["oncall@example.com"]);
            let email = Email { from: "vigil@example.com", to: &to, subject: "over TLS", body: "b" };
            let credentials = || Some(Credentials { username: "vigil", password: "s3cret" });
            let relay = |security, extra_roots_pem| Relay {
                host: "localhost",
                port: sink.port,
                credentials: credentials(),
                security,
                extra_roots_pem,
            };
            send(&relay(Security::StartTls, Some(&pem)), &email).await.unwrap();
            assert_eq!(sink.messages().len(), 1);
            assert_eq!(sink.messages()[0]["login"], json!({"user": "vigil", "mechanism": "PLAIN"}));
            // A relay whose certificate nobody vouches for is not talked to.
            match send(&relay(Security::StartTls, None), &email).await {
                Err(SendMailError::Tls(_)) => {}
                other => panic!("expected a refused certificate, got {other:?}"),
            }
            // Without TLS the relay offers no login, and takes no mail (it requires STARTTLS).
            match send(&relay(Security::None, None), &email).await {
                Err(SendMailError::NoLoginMechanism) => {}
                other => panic!("expected no login offered in clear, got {other:?}"),
            }
            let anonymous = Relay { credentials: None, ..relay(Security::None, None) };
            match send(&anonymous, &email).await {
                Err(SendMailError::Reply { code: 530, .. }) => {}
                other => panic!("expected 530 (STARTTLS first), got {other:?}"),
            }
            assert_eq!(sink.messages().len(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        within_a_minute(async {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let to = recipients(&["oncall@example.com"]);
            let email = Email { from: "vigil@example.com", to: &to, subject: "s", body: "b" };
            let relay =
                Relay { host: "127.0.0.1", port, credentials: None, security: Security::None, extra_roots_pem: None };
            assert!(matches!(send(&relay, &email).await, Err(SendMailError::Connect { .. })));
        })
        .await;
    }
}
