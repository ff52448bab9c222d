//! Connections to the SMTP relay: ours, not lettre's pool, so that they send at once.
//!
//! lettre writes a message's body and its terminating `.` as two flushed writes and leaves
//! Nagle's algorithm on, so the `.` waited until the relay acknowledged the body — which a
//! relay, expecting more, delays: 42.5 ms per message (median, `tcpdump` against the
//! simulated relay), most of what a message cost. Its pool also opened a connection of its
//! own for every message beyond the pooled ones and closed it after that one message. Here
//! at most `pool_size` messages are sent at once, each on a pooled connection, opened with
//! `TCP_NODELAY` for plain and STARTTLS relays. Implicit TLS goes through lettre's own
//! socket, which offers no such option.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How a connection to the relay is secured.
pub enum Security {
    Plain,
    Starttls(TlsParameters),
    Implicit(TlsParameters),
}

/// The relay and the connections open to it.
pub struct Relay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    /// For opening a connection and for sending one message.
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    sending: Semaphore,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

impl SendError {
    /// A 5xx answer: the relay will not take this message, and asking again will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Smtp(error) if error.is_permanent())
    }
}

impl Relay {
    pub fn new(
        host: String,
        port: u16,
        security: Security,
        credentials: Option<Credentials>,
        timeout: Duration,
        pool_size: usize,
    ) -> Self {
        Self {
            host,
            port,
            security,
            credentials,
            timeout,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            sending: Semaphore::new(pool_size.max(1)),
        }
    }

    /// Sends one message on a pooled connection, or a new one when none is idle; a
    /// connection that failed is closed, not pooled.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let _slot = self.sending.acquire().await.expect("the semaphore is never closed");
        let mut connection = match self.idle_connection().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, connection.send(envelope, message)).await {
            Ok(Ok(_)) => {
                self.lock_idle().push(connection);
                Ok(())
            }
            Ok(Err(error)) => {
                connection.abort().await;
                Err(error.into())
            }
            Err(_) => {
                connection.abort().await;
                Err(SendError::TimedOut(self.timeout))
            }
        }
    }

    /// A pooled connection that still answers (a relay closes idle ones).
    async fn idle_connection(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let mut connection = self.lock_idle().pop()?;
            if connection.test_connected().await {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let opening = async {
            let mut connection = match &self.security {
                Security::Implicit(tls) => {
                    let server = (self.host.as_str(), self.port);
                    AsyncSmtpConnection::connect_tokio1(server, None, &self.hello, Some(tls.clone()), None).await?
                }
                Security::Plain | Security::Starttls(_) => {
                    let socket = TcpStream::connect((self.host.as_str(), self.port)).await?;
                    socket.set_nodelay(true)?;
                    AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello).await?
                }
            };
            if let Security::Starttls(tls) = &self.security {
                connection.starttls(tls.clone(), &self.hello).await?;
            }
            if let Some(credentials) = &self.credentials {
                connection.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok::<_, SendError>(connection)
        };
        tokio::time::timeout(self.timeout, opening)
            .await
            .map_err(|_| SendError::TimedOut(self.timeout))?
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<AsyncSmtpConnection>> {
        // A panic while holding the lock leaves whole connections only.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
