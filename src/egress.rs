//! HTTP clients for outgoing calls. Erasure targets are registered by the
//! operator and may live anywhere; callbacks go to URLs that API callers
//! supply, so their client refuses inside addresses (unless allowed), also
//! when a public-looking name resolves to one at call time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::egress::is_public;

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
}

/// For the operator's erasure targets.
pub fn target_client() -> reqwest::Result<reqwest::Client> {
    builder().build()
}

/// For caller-supplied callback URLs.
pub fn callback_client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    if allow_private {
        builder().build()
    } else {
        builder().dns_resolver(Arc::new(PublicOnly)).build()
    }
}

/// Resolves names with the system resolver and keeps only public addresses.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the callback host resolves to no public address".into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A name that resolves to loopback is refused by the callback client
    /// unless private addresses are allowed; the target client reaches it.
    #[tokio::test]
    async fn callback_client_refuses_names_that_resolve_inside() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        let url = format!("http://localhost:{port}/hook");
        let strict = callback_client(false).unwrap();
        let err = strict.get(&url).send().await.unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err:?}");
        let open = callback_client(true).unwrap();
        assert_eq!(open.get(&url).send().await.unwrap().status(), 204);
        let target = target_client().unwrap();
        assert_eq!(target.get(&url).send().await.unwrap().status(), 204);
    }
}
