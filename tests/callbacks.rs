//! Outcome callbacks against both stores: the outbox row is written with the final
//! transition, delivered with a valid signature, retried after a failure, and delivered
//! once even with two deliverers racing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::ensure;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::{TimeZone, Utc};
use closeout_callbacks::{
    verify, Config, Deliverer, Endpoint, Payload, DELIVERY_HEADER, SIGNATURE_HEADER,
};
use closeout_engine::action::Outcome;
use closeout_engine::clock::{Clock, ManualClock};
use closeout_engine::definition;
use closeout_engine::id::{Channel, DefinitionName, StartKey, WorkerId, WorkflowId};
use closeout_engine::{Engine, StartRequest};
use closeout_it::harness::{run_per_backend, TestFn, TestFuture};
use closeout_it::serve::{closure_request, ServeProcess};
use closeout_it::{Backend, Script, TestDb};
use closeout_store::AnyStore;
use serde_json::json;

const FLOW: &str = r#"
name = "cb"
version = 1
[defaults.retry]
max_attempts = 1
[[steps]]
id = "one"
kind = "compensatable"
action = "test.step"
compensation = "test.undo"
[[steps]]
id = "two"
kind = "retriable"
action = "test.step"
"#;

#[derive(Debug, Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.received.lock().unwrap().push((headers, body));
    r.answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK)
}

impl Receiver {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/outcomes", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/outcomes")
    }

    fn payloads(&self) -> Vec<Payload> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }
}

struct World {
    db: TestDb,
    engine: Engine,
    script: Script,
    clock: Arc<ManualClock>,
    receiver: Receiver,
    url: String,
}

const SECRET: &str = "channel-shared-secret";

async fn world(backend: Backend) -> anyhow::Result<World> {
    let db = TestDb::create(backend).await;
    let store = AnyStore::connect(&db.url).await?;
    store.migrate().await?;
    let script = Script::default();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap(),
    ));
    let def = definition::parse(Path::new("cb.toml"), FLOW, &|_| true, &Vec::new)?;
    let config = closeout_engine::Config::new(WorkerId::parse("cb-worker")?);
    let engine = Engine::new(
        store.into_dyn(),
        script.registry(),
        vec![def],
        clock.clone(),
        config,
    )
    .await?;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    Ok(World {
        db,
        engine,
        script,
        clock,
        receiver,
        url,
    })
}

impl World {
    fn deliverer(&self) -> anyhow::Result<Deliverer> {
        let mut config = Config::default();
        config.backoff.jitter = 0.0;
        config.channels.insert(
            Channel::parse("vietjet")?,
            Endpoint {
                url: self.url.parse()?,
                secret: SECRET.to_owned().into(),
            },
        );
        Ok(Deliverer::new(
            self.engine.store().clone(),
            self.clock.clone(),
            config,
        )?)
    }

    async fn run(&self, key: &str, channel: Option<&str>) -> anyhow::Result<WorkflowId> {
        let started = self
            .engine
            .start(StartRequest {
                definition: DefinitionName::parse("cb")?,
                key: StartKey::parse(key)?,
                subject: None,
                channel: channel.map(Channel::parse).transpose()?,
                input: json!({}),
            })
            .await?;
        self.engine.run_until_idle().await?;
        Ok(started.record().id)
    }
}

fn delivered_signed_after_a_retry(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.receiver
            .answers
            .lock()
            .unwrap()
            .push_back(StatusCode::SERVICE_UNAVAILABLE);
        let id = w.run("ok", Some("vietjet")).await?;
        let deliverer = w.deliverer()?;
        ensure!(
            deliverer.deliver_due().await? == 1,
            "one outcome queued by the final commit"
        );
        ensure!(
            deliverer.deliver_due().await? == 0,
            "the retry waits for its backoff"
        );
        w.clock.advance(chrono::Duration::seconds(6));
        ensure!(deliverer.deliver_due().await? == 1);
        w.clock.advance(chrono::Duration::hours(2));
        ensure!(
            deliverer.deliver_due().await? == 0,
            "delivered outcomes are not sent again"
        );
        let payloads = w.receiver.payloads();
        ensure!(payloads.len() == 2 && payloads.iter().all(|p| p.request_id == id.to_string()));
        ensure!(
            payloads[1].state == "completed" && payloads[1].attempt == 2,
            "{payloads:?}"
        );
        let received = w.receiver.received.lock().unwrap().clone();
        for (headers, body) in &received {
            let signature = headers[SIGNATURE_HEADER].to_str()?;
            verify(
                SECRET,
                signature,
                body,
                w.clock.now(),
                Duration::from_secs(3 * 3600),
            )?;
            ensure!(headers[DELIVERY_HEADER].to_str()? == id.to_string());
            let text = String::from_utf8_lossy(body);
            ensure!(
                !text.contains("SJ") && !text.contains("+84"),
                "no personal data in callbacks: {text}"
            );
        }
        w.db.drop_db().await;
        Ok(())
    })
}

fn failures_and_missing_endpoints(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        w.script
            .then("two", [Outcome::fail("E_PARTNER", "refused")]);
        w.run("fails", Some("vietjet")).await?;
        w.run("no-channel", None).await?;
        w.run("unknown", Some("galaxypay")).await?;
        let deliverer = w.deliverer()?;
        ensure!(
            deliverer.deliver_due().await? == 2,
            "no outbox row without a channel"
        );
        w.clock.advance(chrono::Duration::hours(2));
        ensure!(
            deliverer.deliver_due().await? == 0,
            "a channel without an endpoint is given up, not retried"
        );
        let payloads = w.receiver.payloads();
        ensure!(payloads.len() == 1, "only vietjet registered an endpoint");
        ensure!(
            payloads[0].state == "compensated"
                && payloads[0].reason_code.as_deref() == Some("E_PARTNER")
        );
        w.db.drop_db().await;
        Ok(())
    })
}

fn racing_deliverers_send_each_outcome_once(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend).await?;
        for i in 0..30 {
            w.run(&format!("k{i}"), Some("vietjet")).await?;
        }
        let (a, b) = (w.deliverer()?, w.deliverer()?);
        let (x, y) = tokio::join!(a.deliver_due(), b.deliver_due());
        ensure!(x? + y? == 30);
        let mut ids: Vec<String> = w
            .receiver
            .payloads()
            .into_iter()
            .map(|p| p.request_id)
            .collect();
        ids.sort();
        ids.dedup();
        ensure!(
            ids.len() == 30 && w.receiver.payloads().len() == 30,
            "each outcome exactly once"
        );
        w.db.drop_db().await;
        Ok(())
    })
}

/// `serve` itself, as deployed: a channel's request ends (here, refused at eligibility),
/// and within the intervals the process delivers the signed callback, purges the
/// request's personal data and releases a cooldown whose six months have passed.
fn serve_delivers_callbacks_and_runs_its_jobs(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let db = TestDb::create(backend).await;
        let store = AnyStore::connect(&db.url).await?;
        store.migrate().await?;
        let closed_at = Utc::now() - chrono::Duration::days(400);
        store
            .clone()
            .into_dyn()
            .insert_cooldowns(&[closeout_engine::store::CooldownEntry {
                scope: "skyjoy".into(),
                phone_hash: "due".into(),
                key_version: 1,
                closed_at,
                release_at: closeout_cooldown::release_at(closed_at),
                workflow_id: None,
            }])
            .await?;
        let receiver = Receiver::default();
        let url = receiver.start().await;
        let key = "serve-test-channel-key";
        let dir = tempfile::tempdir()?;
        // The callback, the purge and the expiry are due within 30 s of starting serve.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let serve = ServeProcess::builder(&db.url, dir.path())
            .channel("vietjet", key)
            .config(&format!(
                r#"[callbacks.channels.vietjet]
url = "{url}"
secret = "{SECRET}"
[cooldown]
expire_every = "200ms"
[retention]
personal_data = "0s"
purge_every = "200ms"
[stuck]
sweep_every = "200ms"
"#
            ))
            .env("CLOSEOUT_LOG", "warn")
            .start()
            .await?;
        let request = closure_request("vietjet", "SJ9999999999", "+84912345678");
        let id: WorkflowId = serve
            .submit(key, "serve-callback-1", &request)
            .await?
            .parse()?;
        let dyn_store = store.clone().into_dyn();
        let due = [(1, "due".to_owned())];
        loop {
            let delivered = !receiver.payloads().is_empty();
            let purged = dyn_store
                .get(id)
                .await?
                .is_some_and(|r| r.input == json!({ "purged": true }));
            let expired = dyn_store
                .cooldown_until("skyjoy", &due, closed_at)
                .await?
                .is_none();
            if delivered && purged && expired {
                break;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "timed out waiting for the callback, the purge and the expiry"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let payloads = receiver.payloads();
        ensure!(
            payloads[0].request_id == id.to_string() && payloads[0].state == "compensated",
            "{payloads:?}"
        );
        ensure!(
            payloads[0].reason_code.as_deref() == Some("USER_NOT_FOUND"),
            "{payloads:?}"
        );
        let (headers, body) = receiver.received.lock().unwrap()[0].clone();
        verify(
            SECRET,
            headers[SIGNATURE_HEADER].to_str()?,
            &body,
            Utc::now(),
            Duration::from_secs(300),
        )?;
        // Each scheduled job's runs are counted, with the time of the last good one.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = serve
                .client
                .get(format!("{}/metrics", serve.base))
                .send()
                .await?
                .text()
                .await?;
            let counted = ["cooldown_expire", "personal_data_purge", "stuck_sweep"]
                .iter()
                .all(|job| {
                    metrics.contains(&format!(
                        "closeout_job_runs_total{{name=\"{job}\",result=\"done\"}}"
                    )) && metrics.contains(&format!(
                        "closeout_job_last_success_timestamp_seconds{{name=\"{job}\"}}"
                    ))
                });
            if counted {
                ensure!(!metrics.contains("result=\"failed\""), "{metrics}");
                break;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "job runs not counted in /metrics:\n{metrics}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        serve.stop_gracefully().await?;
        db.drop_db().await;
        Ok(())
    })
}

fn main() {
    let tests: &[(&str, TestFn)] = &[
        (
            "delivered_signed_after_a_retry",
            delivered_signed_after_a_retry,
        ),
        (
            "failures_and_missing_endpoints",
            failures_and_missing_endpoints,
        ),
        (
            "racing_deliverers_send_each_outcome_once",
            racing_deliverers_send_each_outcome_once,
        ),
        (
            "serve_delivers_callbacks_and_runs_its_jobs",
            serve_delivers_callbacks_and_runs_its_jobs,
        ),
    ];
    run_per_backend("callbacks", tests)
}
