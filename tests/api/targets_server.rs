//! A real HTTP server standing in for an erasure target (or a platform's
//! callback endpoint): it answers with scripted responses and records what it
//! received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One scripted answer: status, optional delay, optional Retry-After.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay_ms: u64,
}

pub fn reply(status: u16) -> Reply {
    Reply {
        status,
        delay_ms: 0,
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    /// Answer when the script is used up.
    fallback: Option<Reply>,
    received: Vec<Received>,
    /// Answer only when as many calls as the barrier counts (across the
    /// targets sharing it) are waiting, so their answers arrive together.
    gate: Option<Arc<tokio::sync::Barrier>>,
}

#[derive(Clone)]
pub struct FakeTarget {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Arc<Mutex<Script>>>,
) -> HttpResponse {
    let (reply, gate) = {
        let mut s = script.lock().unwrap();
        s.received.push(Received {
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body: body.to_vec(),
        });
        let r = s.replies.pop_front().or(s.fallback).unwrap_or(reply(200));
        (r, s.gate.clone())
    };
    if let Some(gate) = gate {
        // Bounded: a call without a partner is answered anyway.
        let _ = tokio::time::timeout(Duration::from_secs(3), gate.wait()).await;
    }
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap())
        .json(serde_json::json!({ "ok": reply.status < 400 }))
}

impl FakeTarget {
    pub async fn start(replies: &[Reply]) -> Self {
        Self::serve(Script {
            replies: replies.iter().copied().collect(),
            ..Script::default()
        })
        .await
    }

    /// A target that answers 200 once `gate` has as many calls waiting as it
    /// counts (see [`Script::gate`]).
    pub async fn start_gated(gate: Arc<tokio::sync::Barrier>) -> Self {
        Self::serve(Script {
            gate: Some(gate),
            ..Script::default()
        })
        .await
    }

    async fn serve(script: Script) -> Self {
        let script = Arc::new(Mutex::new(script));
        let data = web::Data::new(script.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/erase"),
            script,
        }
    }

    pub fn always(&self, r: Reply) {
        self.script.lock().unwrap().fallback = Some(r);
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}
