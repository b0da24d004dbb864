//! A webhook receiver for tests: a tiny HTTP/1.1 server on port 0 that records every
//! request and answers with scripted statuses (one connection per request; GOIM's
//! client copes with `Connection: close`). Every read is bounded in time and size.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Largest request the receiver reads.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// One request as received, with the status it was answered with.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or_default()
    }
}

#[derive(Default)]
struct Script {
    /// Answered first, one per request.
    next: VecDeque<u16>,
    /// Answered once `next` is used up.
    otherwise: u16,
}

pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver answering 200 to everything.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}/hooks/goim", listener.local_addr().expect("receiver address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script { next: VecDeque::new(), otherwise: 200 }));
        let (r, s) = (received.clone(), script.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), serve(stream, r, s)).await;
                });
            }
        });
        Receiver { url, received, script, task }
    }

    /// Answers the next `statuses`, in order, before the usual status.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().next.extend(statuses.iter().copied());
    }

    /// The status for every request once the scripted ones are used up; 0 never
    /// answers (the connection is held until the sender gives up).
    pub fn answer_always(&self, status: u16) {
        self.script.lock().unwrap().otherwise = status;
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) until `done` holds for what was received, and returns it.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get what was expected in {timeout:?}: {received:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, received: Arc<Mutex<Vec<Delivery>>>, script: Arc<Mutex<Script>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) if buffer.len() + n <= MAX_REQUEST_BYTES => buffer.extend_from_slice(&chunk[..n]),
            Ok(_) => return,
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    if length > MAX_REQUEST_BYTES {
        return;
    }
    while buffer.len() < header_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buffer[header_end..header_end + length].to_vec();
    let status = {
        let mut script = script.lock().unwrap();
        let otherwise = script.otherwise;
        script.next.pop_front().unwrap_or(otherwise)
    };
    received.lock().unwrap().push(Delivery { method, path, headers, body, status });
    if status == 0 {
        // The caller's timeout ends this.
        std::future::pending::<()>().await;
    }
    let reply = format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
