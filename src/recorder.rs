//! An effect recorder: a stand-in partner over real HTTP on loopback. It applies each
//! idempotency key's effect at most once, logs every execution with its start and end
//! time, and notices two executions of one key in flight at the same moment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct ExecutionSpan {
    pub key: String,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    applied: HashMap<String, u32>,
    executions: u64,
    spans: Vec<ExecutionSpan>,
    in_flight: HashMap<String, u32>,
    overlaps: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    delay_ms: (u64, u64),
}

/// Marks an execution finished even when the client hangs up mid-request (the handler
/// future is then dropped).
struct InFlight {
    inner: Arc<Mutex<Inner>>,
    key: String,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(n) = inner.in_flight.get_mut(&self.key) {
            *n -= 1;
        }
        inner.spans.push(ExecutionSpan {
            key: self.key.clone(),
            start: self.start,
            end: Instant::now(),
        });
    }
}

async fn effect(State(recorder): State<Recorder>, headers: HeaderMap) -> StatusCode {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return StatusCode::BAD_REQUEST;
    };
    let guard = {
        let mut inner = recorder.inner.lock().unwrap();
        inner.executions += 1;
        let n = inner.in_flight.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            inner.overlaps.push(key.clone());
        }
        InFlight {
            inner: recorder.inner.clone(),
            key: key.clone(),
            start: Instant::now(),
        }
    };
    let (lo, hi) = recorder.delay_ms;
    let delay = rand::thread_rng().gen_range(lo..=hi);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    {
        let mut inner = recorder.inner.lock().unwrap();
        // Effects are idempotent by key, as a partner's would be.
        let applied = inner.applied.entry(key).or_default();
        if *applied == 0 {
            *applied = 1;
        }
    }
    drop(guard);
    StatusCode::OK
}

impl Recorder {
    /// Serves on 127.0.0.1 with a random port; each request takes `delay_ms` (min, max).
    pub async fn start(delay_ms: (u64, u64)) -> Recorder {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let recorder = Recorder {
            url: format!("http://{addr}"),
            inner: Arc::default(),
            delay_ms,
        };
        let app = Router::new()
            .route("/effect", post(effect))
            .with_state(recorder.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("recorder server");
        });
        recorder
    }

    /// Keys whose effect was applied.
    pub fn applied(&self) -> HashMap<String, u32> {
        self.inner.lock().unwrap().applied.clone()
    }

    pub fn executions(&self) -> u64 {
        self.inner.lock().unwrap().executions
    }

    /// Keys seen in flight twice at once by the live check.
    pub fn overlaps(&self) -> Vec<String> {
        self.inner.lock().unwrap().overlaps.clone()
    }

    /// Pairs of executions of one key whose [start, end] intervals intersect.
    pub fn overlapping_spans(&self) -> Vec<(ExecutionSpan, ExecutionSpan)> {
        let mut by_key: HashMap<String, Vec<ExecutionSpan>> = HashMap::new();
        for span in self.inner.lock().unwrap().spans.iter().cloned() {
            by_key.entry(span.key.clone()).or_default().push(span);
        }
        let mut found = Vec::new();
        for spans in by_key.values_mut() {
            spans.sort_by_key(|s| s.start);
            for pair in spans.windows(2) {
                if pair[1].start < pair[0].end {
                    found.push((pair[0].clone(), pair[1].clone()));
                }
            }
        }
        found
    }
}
