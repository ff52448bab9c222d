//! The platforms' mail server, simulated: enough ESMTP (RFC 5321) for a relay to hand over
//! a message — EHLO, STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954), MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT — over a real TCP socket. Every message is handed to the simulator as it
//! arrived.

use crate::{Simulator, Transcript};
use base64::Engine;
use dijkwacht_runtime::Shutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A message larger than this is refused.
const MAX_MESSAGE_BYTES: usize = 10 << 20;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS for STARTTLS from a certificate chain and its key, both PEM.
pub fn tls_config(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("certificate: {error}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| format!("key: {error}"))?;
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| error.to_string())?;
    Ok(Arc::new(config))
}

/// Serves SMTP on `listener` until shutdown. With `tls`, STARTTLS is offered and required
/// before a message is taken.
pub async fn serve(
    listener: TcpListener,
    simulator: Simulator,
    tls: Option<Arc<ServerConfig>>,
    mut shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let simulator = simulator.clone();
                let tls = tls.clone().map(TlsAcceptor::from);
                tokio::spawn(async move {
                    if let Err(error) = session(stream, simulator, tls).await {
                        tracing::debug!(%error, "SMTP session ended");
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "accepting an SMTP connection failed"),
        }
    }
}

/// One reply in one write: split writes meet Nagle's algorithm and the client's delayed
/// ACK, and each command would wait 40 ms.
async fn reply(reader: &mut BufReader<Box<dyn Io>>, line: &str) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(format!("{line}\r\n").as_bytes()).await?;
    stream.flush().await
}

async fn session(stream: TcpStream, simulator: Simulator, tls: Option<TlsAcceptor>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    let mut secured = false;
    let mut transcript = Transcript::default();
    reply(&mut reader, "220 mail.simulator.invalid ESMTP simulated platform").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                let mut lines = vec!["250-mail.simulator.invalid".to_owned(), "250-8BITMIME".to_owned()];
                if tls.is_some() && !secured {
                    lines.push("250-STARTTLS".into());
                }
                lines.push("250-AUTH PLAIN".into());
                lines.push(format!("250 SIZE {MAX_MESSAGE_BYTES}"));
                reply(&mut reader, &lines.join("\r\n")).await?;
            }
            "HELO" => reply(&mut reader, "250 mail.simulator.invalid").await?,
            "STARTTLS" => {
                let Some(acceptor) = tls.as_ref().filter(|_| !secured) else {
                    reply(&mut reader, "502 STARTTLS not available").await?;
                    continue;
                };
                reply(&mut reader, "220 ready to start TLS").await?;
                let plain = reader.into_inner();
                let encrypted = acceptor.accept(plain).await?;
                reader = BufReader::new(Box::new(encrypted));
                secured = true;
                // RFC 3207: the session starts over after the handshake.
                transcript = Transcript::default();
            }
            "AUTH" => {
                let mut parts = command.split_whitespace().skip(1);
                if !parts
                    .next()
                    .is_some_and(|mechanism| mechanism.eq_ignore_ascii_case("PLAIN"))
                {
                    reply(&mut reader, "504 only AUTH PLAIN").await?;
                    continue;
                }
                let initial = match parts.next() {
                    Some(initial) => initial.to_owned(),
                    None => {
                        reply(&mut reader, "334 ").await?;
                        let mut response = String::new();
                        reader.read_line(&mut response).await?;
                        response.trim().to_owned()
                    }
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(initial)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                match decoded.as_deref().and_then(|plain| plain.split('\0').nth(1)) {
                    Some(user) => {
                        transcript.authenticated_as = Some(user.to_owned());
                        reply(&mut reader, "235 authenticated").await?;
                    }
                    None => reply(&mut reader, "501 malformed AUTH PLAIN").await?,
                }
            }
            "MAIL" => {
                if tls.is_some() && !secured {
                    reply(&mut reader, "530 must issue a STARTTLS command first").await?;
                    continue;
                }
                transcript.from = address_in(&command);
                transcript.recipients.clear();
                reply(&mut reader, "250 sender ok").await?;
            }
            "RCPT" => {
                let recipient = address_in(&command);
                if simulator.refuses_mail_for(&recipient) {
                    reply(&mut reader, "550 no such mailbox").await?;
                    continue;
                }
                transcript.recipients.push(recipient);
                reply(&mut reader, "250 recipient ok").await?;
            }
            "DATA" => {
                if transcript.recipients.is_empty() {
                    reply(&mut reader, "503 no recipients").await?;
                    continue;
                }
                reply(&mut reader, "354 end data with <CR><LF>.<CR><LF>").await?;
                let data = read_data(&mut reader).await?;
                let Some(data) = data else {
                    reply(&mut reader, "552 message too large").await?;
                    continue;
                };
                transcript.secured = secured;
                let queued = simulator.receive_mail(&transcript, &data);
                reply(&mut reader, &format!("250 queued as {queued}")).await?;
                transcript.recipients.clear();
            }
            "RSET" => {
                transcript.from.clear();
                transcript.recipients.clear();
                reply(&mut reader, "250 reset").await?;
            }
            "NOOP" => reply(&mut reader, "250 ok").await?,
            "QUIT" => {
                reply(&mut reader, "221 bye").await?;
                return Ok(());
            }
            _ => reply(&mut reader, "502 command not implemented").await?,
        }
    }
}

/// The address between angle brackets of `MAIL FROM:<…>` or `RCPT TO:<…>`.
fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |at| at + 1);
    let end = command[start..].find('>').map_or(command.len(), |at| start + at);
    command[start..end].to_owned()
}

/// The message up to the line with a single dot, un-dot-stuffed; `None` when too large.
async fn read_data(reader: &mut BufReader<Box<dyn Io>>) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    let mut too_large = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_large).then_some(data));
        }
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        if data.len() + unstuffed.len() > MAX_MESSAGE_BYTES {
            too_large = true;
        } else {
            data.extend_from_slice(unstuffed);
        }
    }
}
