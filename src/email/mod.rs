//! Outgoing email: lettre over SMTP (STARTTLS/TLS, pooled, with timeouts) or,
//! with no SMTP server configured, .eml files in a folder. Recipients never
//! reach the log.

pub mod digest;
pub mod owner_texts;
pub mod texts;
pub mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::{Error as SmtpError, PoolConfig};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use tokio::sync::Semaphore;

use crate::domain::values::EmailAddress;

/// A rendered email, ready to send.
#[derive(Clone)]
pub struct OutgoingEmail {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server refused for good (5xx, bad address): retrying will not help.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
    /// Connection refused, timeout, 4xx: try again later.
    #[error("temporary delivery failure: {0}")]
    Temporary(String),
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Sends mail. Cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// One permit per pooled SMTP connection. lettre's pool opens a new
    /// connection whenever all of its are busy and closes it again after
    /// the email when the pool is full: with many jobs mailing at once,
    /// most emails paid a connection, greeting, EHLO and QUIT of their own
    /// (bench/pipeline, N = 10,000: 23,000 emails over 12,855 connections).
    /// Holding a permit while sending keeps the sends to the pooled
    /// connections (the same run since: 65 connections, with 64 permits).
    sending: Arc<Semaphore>,
}

impl Mailer {
    /// SMTP when `smtp_url` is set (`smtp://`, `smtp://...?tls=required` for
    /// STARTTLS, `smtps://` for TLS, credentials in the URL), else a folder.
    pub fn new(
        smtp_url: Option<&url::Url>,
        outbox_dir: &Path,
        from: Mailbox,
        timeout: Duration,
        connections: u32,
    ) -> Result<Self, String> {
        let connections = connections.max(1);
        let transport = match smtp_url {
            Some(url) => {
                let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
                    .map_err(|e| format!("LETHE_SMTP_URL: {e}"))?
                    .timeout(Some(timeout))
                    .pool_config(PoolConfig::new().max_size(connections))
                    .build();
                Transport::Smtp(t)
            }
            None => Transport::Folder(
                AsyncFileTransport::new(outbox_dir),
                outbox_dir.to_path_buf(),
            ),
        };
        let permits = usize::try_from(connections).unwrap_or(1);
        Ok(Self {
            transport,
            from,
            sending: Arc::new(Semaphore::new(permits)),
        })
    }

    pub fn describe(&self) -> &'static str {
        match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Folder(..) => "outbox folder",
        }
    }

    /// Send `email`; it is moved into the message (not copied) and freed
    /// once sent, so a job waiting on its write afterwards holds no email.
    pub async fn send(&self, email: OutgoingEmail) -> Result<(), SendError> {
        let result = self.deliver(email).await;
        let outcome = match &result {
            Ok(()) => "sent",
            Err(SendError::Temporary(_)) => "temporary_failure",
            Err(SendError::Permanent(_)) => "permanent_failure",
        };
        crate::metrics::email(self.describe(), outcome);
        result
    }

    async fn deliver(&self, email: OutgoingEmail) -> Result<(), SendError> {
        let to: Mailbox = email.to.as_str().parse().map_err(|e| {
            SendError::Permanent(format!("the recipient address is not deliverable: {e}"))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .multipart(MultiPart::alternative_plain_html(email.text, email.html))
            .map_err(|e| SendError::Permanent(format!("the message could not be built: {e}")))?;
        match &self.transport {
            Transport::Smtp(t) => {
                // The semaphore is never closed: the error arm cannot happen.
                let _connection = self
                    .sending
                    .acquire()
                    .await
                    .map_err(|_| SendError::Temporary("the mailer is shutting down".into()))?;
                t.send(message).await.map(|_| ()).map_err(classify)
            }
            Transport::Folder(t, dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    SendError::Temporary(format!("cannot create the outbox folder: {e}"))
                })?;
                t.send(message).await.map(|_| ()).map_err(|e| {
                    SendError::Temporary(format!("cannot write to the outbox folder: {e}"))
                })
            }
        }
    }
}

fn classify(e: SmtpError) -> SendError {
    let message = redact_addresses(&e.to_string());
    if e.is_permanent() {
        SendError::Permanent(message)
    } else {
        SendError::Temporary(message)
    }
}

/// Mail servers quote the recipient in their replies; keep addresses out of
/// errors that reach logs and the job table.
pub fn redact_addresses(s: &str) -> String {
    s.split_inclusive(|c: char| c.is_whitespace())
        .map(|w| {
            if w.contains('@') {
                let tail: String = w.chars().rev().take_while(|c| c.is_whitespace()).collect();
                format!("<redacted>{tail}")
            } else {
                w.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_redacted_from_errors() {
        let r = super::redact_addresses("550 5.1.1 <jane@example.org>: Recipient address rejected");
        assert!(!r.contains("jane"));
        assert!(r.starts_with("550 5.1.1 <redacted> Recipient"));
    }
}
