//! The mailer against a real SMTP peer (maildev): many emails at once go
//! over the pooled connections, not one connection each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lethe::domain::values::EmailAddress;
use lethe::email::{Mailer, OutgoingEmail};
use tokio::net::{TcpListener, TcpStream};

use crate::mail::MailCatcher;

/// A TCP relay on loopback in front of `to` that counts the connections
/// made through it; the SMTP conversation itself is the catcher's.
async fn counting_relay(to: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_sent_at_once_share_the_pooled_connections() {
    let catcher = MailCatcher::start().await;
    let (relay, connections) = counting_relay(catcher.smtp_port).await;
    let url: url::Url = format!("smtp://127.0.0.1:{relay}").parse().unwrap();
    let outbox = std::env::temp_dir().join("lethe-mailer-test-unused");
    let mailer = Mailer::new(
        Some(&url),
        &outbox,
        "lethe <lethe@localhost>".parse().unwrap(),
        Duration::from_secs(15),
        2,
    )
    .unwrap();

    let to = "dpo@pooled.example";
    let sends = (0..12).map(|n| {
        let mailer = mailer.clone();
        async move {
            let email = OutgoingEmail {
                to: EmailAddress::parse("email", to).unwrap(),
                subject: format!("message {n}"),
                text: format!("text {n}"),
                html: format!("<p>html {n}</p>"),
            };
            mailer.send(email).await
        }
    });
    let results = futures::future::join_all(sends).await;
    assert!(results.iter().all(Result::is_ok), "every send succeeds");

    let caught = catcher.wait_for(to, 12).await;
    assert_eq!(caught.len(), 12, "every email arrives");
    let mut subjects: Vec<String> = caught
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 12, "each email once");
    // lettre hands a connection back to its pool on a task of its own, so
    // now and then the next email finds the pool empty for a moment and
    // opens one more (bench/pipeline: 23,000 emails over 65 connections with
    // 64); without the bound on sends at once, each of the 12 opens its own.
    let opened = connections.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&opened),
        "12 emails at once over the 2 pooled connections, not one each: {opened} opened"
    );
}
