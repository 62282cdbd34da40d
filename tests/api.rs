//! The HTTP API over real HTTP on loopback, on SQLite and PostgreSQL: the channel API,
//! the BRD endpoint, the operations API, the registrars' cooldown check, probes, metrics,
//! OpenAPI and the limits. The
//! engine runs on a manual clock and is driven with `run_until_idle`; partners are the
//! sandbox.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context as _};
use chrono::Utc;
use closeout_api::auth::{hash_key, Role};
use closeout_api::config::{ChannelKeys, OperatorKeys, RateLimit, RegistrarKeys};
use closeout_connectors::{Connectors, Endpoint};
use closeout_cooldown::HashKeys;
use closeout_engine::action::Registry;
use closeout_engine::clock::{Clock as _, ManualClock};
use closeout_engine::definition;
use closeout_engine::id::WorkerId;
use closeout_engine::store::CooldownEntry;
use closeout_engine::{Config, Engine};
use closeout_it::harness::{run_per_backend, TestFn, TestFuture};
use closeout_it::{Backend, TestDb};
use closeout_sandbox::{members, Fault, FaultRule, Injected, Sandbox, SandboxConfig};
use closeout_store::AnyStore;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const VIETJET_KEY: &str = "vietjet-channel-key-0123456789";
const VIETJET_NEW_KEY: &str = "vietjet-channel-key-rotated-42";
const SKYJOY_KEY: &str = "skyjoy-channel-key-0123456789";
const OPS_WRITE_KEY: &str = "ops-alice-write-key-0123456789";
const OPS_READ_KEY: &str = "ops-bob-read-key-0123456789";
const REGISTRAR_KEY: &str = "skyjoy-signup-registrar-key-0123";
const HASH_KEY_V1: &str = "a test key that is long enough to use";
const HASH_KEY_V2: &str = "the rotated phone-hash key, also long enough";

fn hash_keys(versions: &[(u32, &str)]) -> HashKeys {
    HashKeys::new(versions.iter().map(|(v, k)| (*v, (*k).to_owned().into())))
        .expect("test keys are long enough")
}

fn api_config() -> closeout_api::Config {
    let mut config = closeout_api::Config::default();
    config.channels.insert(
        "vietjet".into(),
        ChannelKeys {
            key_hashes: vec![hash_key(VIETJET_KEY), hash_key(VIETJET_NEW_KEY)],
        },
    );
    config.channels.insert(
        "skyjoy".into(),
        ChannelKeys {
            key_hashes: vec![hash_key(SKYJOY_KEY)],
        },
    );
    let mut operators = BTreeMap::new();
    operators.insert(
        "alice".into(),
        OperatorKeys {
            role: Role::Write,
            key_hashes: vec![hash_key(OPS_WRITE_KEY)],
        },
    );
    operators.insert(
        "bob".into(),
        OperatorKeys {
            role: Role::Read,
            key_hashes: vec![hash_key(OPS_READ_KEY)],
        },
    );
    config.operators = operators;
    config.registrars.insert(
        "skyjoy-signup".into(),
        RegistrarKeys {
            key_hashes: vec![hash_key(REGISTRAR_KEY)],
        },
    );
    config.rate_limit = RateLimit {
        per_second: 1000,
        burst: 1000,
    };
    config
}

struct World {
    db: TestDb,
    store: AnyStore,
    /// The deletion-certificate keys the API signs with.
    certificates: closeout_certificate::Keys,
    sandbox: Sandbox,
    engine: Engine,
    clock: Arc<ManualClock>,
    base: String,
    http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn world(backend: Backend, config: closeout_api::Config) -> anyhow::Result<World> {
    world_with_keys(backend, config, hash_keys(&[(1, HASH_KEY_V1)])).await
}

/// A world whose closing steps and cooldown check use `keys`.
async fn world_with_keys(
    backend: Backend,
    config: closeout_api::Config,
    keys: HashKeys,
) -> anyhow::Result<World> {
    let db = TestDb::create(backend).await;
    let store = AnyStore::connect(&db.url).await?;
    store.migrate().await?;
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    let connectors = Connectors::new(&sandbox.connectors_config())?;
    let mut registry = Registry::new();
    closeout_flows::register(&mut registry, connectors.clone(), keys.clone());
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let defs = definition::load_dir(&workflows, &|a| registry.contains(a), &|| registry.names())?;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let engine = Engine::new(
        store.clone().into_dyn(),
        registry,
        defs,
        clock.clone(),
        Config::new(WorkerId::parse("api-test")?),
    )
    .await?;
    let certificates = closeout_certificate::Keys::generate("test-1")?.0;
    let state = closeout_api::AppState::new(
        engine.clone(),
        store.clone(),
        connectors.skyjoy,
        keys,
        &config,
    )?
    .with_certificates(certificates.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(closeout_api::serve(
        listener,
        closeout_api::app(state),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(World {
        db,
        store,
        certificates,
        sandbox,
        engine,
        clock,
        base,
        http: reqwest::Client::new(),
        stop,
        server,
    })
}

/// One HTTP answer, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl World {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        ensure!(
            headers.contains_key("x-request-id"),
            "{path} answered {status} without x-request-id"
        );
        Ok(Answer {
            status,
            headers,
            body,
            text,
        })
    }

    async fn get(&self, path: &str, key: Option<&str>) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, key, &[], None).await
    }

    async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::POST, path, key, &[], Some(body)).await
    }

    async fn submit(&self, key: &str, idempotency: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(
            Method::POST,
            "/v1/requests",
            Some(key),
            &[("Idempotency-Key", idempotency)],
            Some(body),
        )
        .await
    }

    /// Submits `flow` for `member` on the Vietjet channel and drives the engine; the
    /// request's ID.
    async fn submitted(&self, flow: &str, member: &str) -> anyhow::Result<String> {
        let answer = self
            .submit(
                VIETJET_KEY,
                &format!("k-{flow}-{member}"),
                &request(flow, member),
            )
            .await?;
        ensure!(answer.status == StatusCode::ACCEPTED, "{}", answer.text);
        self.engine.run_until_idle().await?;
        Ok(answer.body["request_id"].as_str().unwrap().to_owned())
    }

    async fn ops_state(&self, id: &str) -> anyhow::Result<String> {
        let answer = self
            .get(&format!("/v1/ops/requests/{id}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(answer.status == StatusCode::OK, "{}", answer.text);
        Ok(answer.body["state"].as_str().unwrap().to_owned())
    }

    async fn finish(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        drop(self.engine);
        self.sandbox.stop().await;
        self.db.drop_db().await;
        Ok(())
    }
}

fn request(flow: &str, member: &str) -> Value {
    let n = member.chars().last().unwrap();
    json!({
        "flow": flow,
        "skyjoy_id": member,
        "phone": format!("+8490000000{n}"),
        "reason": "moving abroad",
        "requested_at": "2024-03-15T04:07:32.347Z",
        "platform": "Vietjet web",
    })
}

fn brd_body(member: &str, at: &str) -> Value {
    let n = member.chars().last().unwrap();
    json!({
        "skyjoyId": member,
        "phone": format!("+8490000000{n}"),
        "comment": "user request close",
        "requestAt": at,
        "requestPlatform": "Vietjet web",
    })
}

fn channel_api(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let body = request("vietjet", members::ACTIVE_FULL);

        // Authentication: 401 without or with a wrong key, 403 for an operations key.
        let none = w
            .call(
                Method::POST,
                "/v1/requests",
                None,
                &[("Idempotency-Key", "a1")],
                Some(&body),
            )
            .await?;
        ensure!(none.status == StatusCode::UNAUTHORIZED && none.code() == "UNAUTHENTICATED");
        let wrong = w.submit("not-a-key", "a1", &body).await?;
        ensure!(wrong.status == StatusCode::UNAUTHORIZED, "{}", wrong.text);
        let ops = w.submit(OPS_WRITE_KEY, "a1", &body).await?;
        ensure!(ops.status == StatusCode::FORBIDDEN, "{}", ops.text);

        // Validation names the field; the header is required and checked.
        let missing = w
            .call(
                Method::POST,
                "/v1/requests",
                Some(VIETJET_KEY),
                &[],
                Some(&body),
            )
            .await?;
        ensure!(
            missing.status == StatusCode::BAD_REQUEST
                && missing.body["error"]["field"] == "Idempotency-Key",
            "{}",
            missing.text
        );
        let bad_key = w.submit(VIETJET_KEY, "has space", &body).await?;
        ensure!(bad_key.code() == "INVALID_HEADER", "{}", bad_key.text);
        let mut unknown = body.clone();
        unknown["email"] = json!("x@y.z");
        let answer = w.submit(VIETJET_KEY, "a1", &unknown).await?;
        ensure!(
            answer.status == StatusCode::BAD_REQUEST && answer.text.contains("email"),
            "{}",
            answer.text
        );
        let mut bad_phone = body.clone();
        bad_phone["phone"] = json!("12");
        let answer = w.submit(VIETJET_KEY, "a1", &bad_phone).await?;
        ensure!(
            answer.body["error"]["field"] == "phone" && !answer.text.contains("\"12\""),
            "{}",
            answer.text
        );
        let mut long = body.clone();
        long["reason"] = json!("x".repeat(1001));
        let answer = w.submit(VIETJET_KEY, "a1", &long).await?;
        ensure!(answer.body["error"]["field"] == "reason", "{}", answer.text);

        // Accepted after the commit; the same key and body replay the original answer.
        let first = w.submit(VIETJET_KEY, "a1", &body).await?;
        ensure!(first.status == StatusCode::ACCEPTED, "{}", first.text);
        ensure!(first.body["status"] == "running", "{}", first.text);
        let id = first.body["request_id"]
            .as_str()
            .context("request_id")?
            .to_owned();
        w.engine.run_until_idle().await?;
        let again = w.submit(VIETJET_NEW_KEY, "a1", &body).await?;
        ensure!(
            again.status == StatusCode::ACCEPTED && again.body == first.body,
            "replay with a rotated key of the same channel: {}",
            again.text
        );
        ensure!(again.headers["idempotent-replayed"] == "true");

        // Same key, different body: 422.
        let mut changed = body.clone();
        changed["reason"] = json!("changed my mind");
        let mismatch = w.submit(VIETJET_KEY, "a1", &changed).await?;
        ensure!(
            mismatch.status == StatusCode::UNPROCESSABLE_ENTITY
                && mismatch.code() == "IDEMPOTENCY_KEY_REUSED",
            "{}",
            mismatch.text
        );

        // Another open request for the member: 409, naming it only to its own channel.
        let dup = w.submit(VIETJET_KEY, "a2", &body).await?;
        ensure!(
            dup.status == StatusCode::CONFLICT
                && dup.code() == "DUPLICATE_REQUEST"
                && dup.body["error"]["existing_request_id"] == id.as_str(),
            "{}",
            dup.text
        );
        let mut skyjoy_body = body.clone();
        skyjoy_body["flow"] = json!("skyjoy");
        let other = w.submit(SKYJOY_KEY, "a1", &skyjoy_body).await?;
        ensure!(
            other.status == StatusCode::CONFLICT
                && other.body["error"].get("existing_request_id").is_none(),
            "{}",
            other.text
        );

        // Status: state, step, timestamps; no personal data; 404 for another channel.
        let status = w
            .get(&format!("/v1/requests/{id}"), Some(VIETJET_KEY))
            .await?;
        ensure!(status.status == StatusCode::OK, "{}", status.text);
        ensure!(status.body["state"] == "waiting", "{}", status.text);
        ensure!(
            status.body["current_step"] == "ops_decision",
            "{}",
            status.text
        );
        ensure!(status.body["outcome"] == "pending", "{}", status.text);
        for field in ["created_at", "updated_at", "state_since"] {
            ensure!(status.body[field].is_string(), "{field}: {}", status.text);
        }
        ensure!(
            !status.text.contains("+849") && !status.text.contains("moving abroad"),
            "{}",
            status.text
        );
        let foreign = w
            .get(&format!("/v1/requests/{id}"), Some(SKYJOY_KEY))
            .await?;
        ensure!(foreign.status == StatusCode::NOT_FOUND, "{}", foreign.text);
        let unknown = w
            .get(
                &format!("/v1/requests/{}", uuid::Uuid::new_v4()),
                Some(VIETJET_KEY),
            )
            .await?;
        ensure!(unknown.status == StatusCode::NOT_FOUND);
        let ops = w
            .get(&format!("/v1/requests/{id}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(ops.status == StatusCode::FORBIDDEN);
        w.finish().await
    })
}

fn ops_decisions(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let approved = w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let rejected = w.submitted("vietjet", members::PENDING).await?;

        // Listing: read role suffices; filters by state, flow, channel, step, age.
        let list = w
            .get(
                "/v1/ops/requests?state=waiting&flow=vietjet&channel=vietjet&step=ops_decision",
                Some(OPS_READ_KEY),
            )
            .await?;
        ensure!(list.status == StatusCode::OK, "{}", list.text);
        let ids: Vec<&str> = list.body["requests"]
            .as_array()
            .context("requests")?
            .iter()
            .map(|r| r["request_id"].as_str().unwrap())
            .collect();
        ensure!(
            ids == [approved.as_str(), rejected.as_str()],
            "oldest first: {ids:?}"
        );
        let none = w
            .get("/v1/ops/requests?state=needs_operator", Some(OPS_READ_KEY))
            .await?;
        ensure!(none.body["requests"] == json!([]), "{}", none.text);
        let later = w
            .get("/v1/ops/requests?older_than=1h", Some(OPS_READ_KEY))
            .await?;
        ensure!(later.body["requests"] == json!([]), "{}", later.text);
        w.clock.advance(chrono::Duration::hours(2));
        let later = w
            .get(
                "/v1/ops/requests?older_than=1h&state=waiting",
                Some(OPS_READ_KEY),
            )
            .await?;
        ensure!(
            later.body["requests"].as_array().map(Vec::len) == Some(2)
                && later.body["requests"][0]["age_in_state_secs"] == 7200,
            "{}",
            later.text
        );
        let bad = w
            .get("/v1/ops/requests?state=sleeping", Some(OPS_READ_KEY))
            .await?;
        ensure!(bad.body["error"]["field"] == "state", "{}", bad.text);
        let typo = w
            .get("/v1/ops/requests?stat=waiting", Some(OPS_READ_KEY))
            .await?;
        ensure!(typo.status == StatusCode::BAD_REQUEST, "{}", typo.text);
        let channel = w.get("/v1/ops/requests", Some(VIETJET_KEY)).await?;
        ensure!(channel.status == StatusCode::FORBIDDEN, "{}", channel.text);
        let anonymous = w.get("/v1/ops/requests", None).await?;
        ensure!(anonymous.status == StatusCode::UNAUTHORIZED);

        // Writes need the write role and a reason.
        let approve = format!("/v1/ops/requests/{approved}/approve");
        let read_only = w
            .post(&approve, Some(OPS_READ_KEY), &json!({"reason": "ok"}))
            .await?;
        ensure!(
            read_only.status == StatusCode::FORBIDDEN,
            "{}",
            read_only.text
        );
        let no_reason = w.post(&approve, Some(OPS_WRITE_KEY), &json!({})).await?;
        ensure!(
            no_reason.status == StatusCode::BAD_REQUEST,
            "{}",
            no_reason.text
        );
        let blank = w
            .post(&approve, Some(OPS_WRITE_KEY), &json!({"reason": " "}))
            .await?;
        ensure!(blank.body["error"]["field"] == "reason", "{}", blank.text);

        let answer = w
            .post(
                &approve,
                Some(OPS_WRITE_KEY),
                &json!({"reason": "checked by SkyJoy ops"}),
            )
            .await?;
        ensure!(answer.status == StatusCode::OK, "{}", answer.text);
        let answer = w
            .post(
                &format!("/v1/ops/requests/{rejected}/reject"),
                Some(OPS_WRITE_KEY),
                &json!({"reason": "fraud suspected"}),
            )
            .await?;
        ensure!(answer.status == StatusCode::OK, "{}", answer.text);
        w.engine.run_until_idle().await?;
        ensure!(w.ops_state(&approved).await? == "completed");
        ensure!(w.ops_state(&rejected).await? == "rejected");

        // The channel sees the outcome.
        let status = w
            .get(&format!("/v1/requests/{approved}"), Some(VIETJET_KEY))
            .await?;
        ensure!(status.body["outcome"] == "closed", "{}", status.text);
        let status = w
            .get(&format!("/v1/requests/{rejected}"), Some(VIETJET_KEY))
            .await?;
        ensure!(status.body["outcome"] == "rejected", "{}", status.text);

        // Detail: steps and full history, with the actor and reason of the decision.
        let detail = w
            .get(&format!("/v1/ops/requests/{approved}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(detail.status == StatusCode::OK, "{}", detail.text);
        let history = detail.body["history"].as_array().context("history")?;
        ensure!(history.len() > 10, "{}", detail.text);
        ensure!(
            history
                .iter()
                .any(|e| e["actor"] == "ops:alice" && e["reason"] == "checked by SkyJoy ops"),
            "{}",
            detail.text
        );
        ensure!(detail.body["steps"].as_array().unwrap().len() == 9);
        ensure!(!detail.text.contains("moving abroad"), "no reason text");

        // Commands that do not apply: 409 with the engine's hint.
        for action in ["approve", "retry", "resume", "cancel"] {
            let answer = w
                .post(
                    &format!("/v1/ops/requests/{approved}/{action}"),
                    Some(OPS_WRITE_KEY),
                    &json!({"reason": "again"}),
                )
                .await?;
            ensure!(
                answer.status == StatusCode::CONFLICT && answer.code() == "NOT_ALLOWED",
                "{action}: {}",
                answer.text
            );
        }
        let skip = format!("/v1/ops/requests/{approved}/skip");
        let no_output = w
            .post(&skip, Some(OPS_WRITE_KEY), &json!({"reason": "x"}))
            .await?;
        ensure!(
            no_output.status == StatusCode::BAD_REQUEST && no_output.text.contains("output"),
            "{}",
            no_output.text
        );
        let done = w
            .post(
                &skip,
                Some(OPS_WRITE_KEY),
                &json!({"reason": "x", "output": {}}),
            )
            .await?;
        ensure!(done.status == StatusCode::CONFLICT, "{}", done.text);
        let unknown = w
            .post(
                &format!("/v1/ops/requests/{}/retry", uuid::Uuid::new_v4()),
                Some(OPS_WRITE_KEY),
                &json!({"reason": "x"}),
            )
            .await?;
        ensure!(unknown.status == StatusCode::NOT_FOUND, "{}", unknown.text);
        w.finish().await
    })
}

fn ops_skip_retry_resume(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        // Three failures of the SkyJoy profile call leave the eligibility step retrying.
        w.sandbox.add_fault(FaultRule::on(
            Endpoint::SkyjoyUserProfile,
            Fault::FailNext {
                count: 3,
                answer: Injected {
                    status: Some(503),
                    body: None,
                },
            },
        ))?;
        let id = w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let detail = w
            .get(&format!("/v1/ops/requests/{id}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(
            detail.body["state"] == "running" && detail.body["current_step"] == "eligibility",
            "{}",
            detail.text
        );
        // Retry now, while the fault still answers: the step stays on eligibility.
        let retry = w
            .post(
                &format!("/v1/ops/requests/{id}/retry"),
                Some(OPS_WRITE_KEY),
                &json!({"reason": "partner back"}),
            )
            .await?;
        ensure!(retry.status == StatusCode::OK, "{}", retry.text);
        w.engine.run_until_idle().await?;
        // Skip it with the output the step would have produced.
        let skip = w
            .post(
                &format!("/v1/ops/requests/{id}/skip"),
                Some(OPS_WRITE_KEY),
                &json!({"reason": "eligibility confirmed by phone", "output": {"status": "ACTIVE", "email": "member1@sandbox.test"}}),
            )
            .await?;
        ensure!(skip.status == StatusCode::OK, "{}", skip.text);
        w.engine.run_until_idle().await?;
        ensure!(w.ops_state(&id).await? == "waiting");
        // Resume applies only to a request needing an operator.
        let resume = w
            .post(
                &format!("/v1/ops/requests/{id}/resume"),
                Some(OPS_WRITE_KEY),
                &json!({"reason": "x"}),
            )
            .await?;
        ensure!(resume.status == StatusCode::CONFLICT, "{}", resume.text);
        let history = w
            .get(&format!("/v1/ops/requests/{id}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(
            history.text.contains("eligibility confirmed by phone"),
            "{}",
            history.text
        );
        w.finish().await
    })
}

fn ops_bulk(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let mut ids = Vec::new();
        for member in [members::ACTIVE_FULL, members::PENDING] {
            ids.push(w.submitted("vietjet", member).await?);
        }
        let filter = json!({"state": "waiting", "flow": "vietjet"});
        let dry = w
            .post(
                "/v1/ops/bulk/cancel",
                Some(OPS_WRITE_KEY),
                &json!({"filter": filter, "reason": "campaign withdrawn", "dry_run": true}),
            )
            .await?;
        ensure!(dry.status == StatusCode::OK, "{}", dry.text);
        ensure!(
            dry.body["count"] == 2 && dry.body["dry_run"] == true,
            "{}",
            dry.text
        );
        let listed: Vec<&str> = dry.body["request_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        ensure!(listed == [ids[0].as_str(), ids[1].as_str()], "{}", dry.text);
        for id in &ids {
            ensure!(
                w.ops_state(id).await? == "waiting",
                "a dry run changes nothing"
            );
        }

        let everything = w
            .post(
                "/v1/ops/bulk/cancel",
                Some(OPS_WRITE_KEY),
                &json!({"filter": {}, "reason": "x"}),
            )
            .await?;
        ensure!(
            everything.body["error"]["field"] == "filter",
            "{}",
            everything.text
        );
        let read_only = w
            .post(
                "/v1/ops/bulk/cancel",
                Some(OPS_READ_KEY),
                &json!({"filter": filter, "reason": "x"}),
            )
            .await?;
        ensure!(read_only.status == StatusCode::FORBIDDEN);
        let unknown = w
            .post(
                "/v1/ops/bulk/explode",
                Some(OPS_WRITE_KEY),
                &json!({"filter": filter, "reason": "x"}),
            )
            .await?;
        ensure!(unknown.status == StatusCode::NOT_FOUND, "{}", unknown.text);
        let resume = w
            .post(
                "/v1/ops/bulk/resume",
                Some(OPS_WRITE_KEY),
                &json!({"filter": filter, "reason": "x"}),
            )
            .await?;
        ensure!(
            resume.body["count"] == 2
                && resume.body["failed"].as_array().unwrap().len() == 2
                && resume.body["failed"][0]["code"] == "NOT_ALLOWED",
            "waiting requests cannot be resumed, each says why: {}",
            resume.text
        );
        let retry = w
            .post(
                "/v1/ops/bulk/retry",
                Some(OPS_WRITE_KEY),
                &json!({"filter": {"state": "needs_operator"}, "reason": "x"}),
            )
            .await?;
        ensure!(retry.body["count"] == 0, "{}", retry.text);

        let real = w
            .post(
                "/v1/ops/bulk/cancel",
                Some(OPS_WRITE_KEY),
                &json!({"filter": filter, "reason": "campaign withdrawn"}),
            )
            .await?;
        ensure!(
            real.body["count"] == 2 && real.body["failed"] == json!([]),
            "{}",
            real.text
        );
        w.engine.run_until_idle().await?;
        for id in &ids {
            ensure!(w.ops_state(id).await? == "cancelled");
        }
        w.finish().await
    })
}

fn brd_endpoint(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let path = "/api-user/partner/v1/user/deletion-request";
        let at = "2024-03-15T04:07:32.347Z";
        let envelope = |a: &Answer, status: u16, code: &str| -> anyhow::Result<()> {
            ensure!(a.status.as_u16() == status, "{}", a.text);
            ensure!(a.body["statusCode"] == status, "{}", a.text);
            ensure!(a.body["errors"]["code"] == code, "{}", a.text);
            ensure!(a.body["errors"]["name"].is_string() && a.body["message"].is_string());
            Ok(())
        };

        let ok = w
            .post(path, Some(VIETJET_KEY), &brd_body(members::ACTIVE_FULL, at))
            .await?;
        ensure!(ok.status == StatusCode::OK, "{}", ok.text);
        ensure!(ok.body["statusCode"] == 200, "{}", ok.text);
        let id = ok.body["data"]["requestId"]
            .as_str()
            .context("requestId")?
            .to_owned();
        let again = w
            .post(path, Some(VIETJET_KEY), &brd_body(members::ACTIVE_FULL, at))
            .await?;
        ensure!(
            again.body == ok.body,
            "a retried request is the same one: {}",
            again.text
        );
        w.engine.run_until_idle().await?;
        let status = w
            .get(&format!("/v1/requests/{id}"), Some(VIETJET_KEY))
            .await?;
        ensure!(status.body["state"] == "waiting", "{}", status.text);

        let dup = w
            .post(
                path,
                Some(VIETJET_KEY),
                &brd_body(members::ACTIVE_FULL, "2024-03-16T00:00:00.000Z"),
            )
            .await?;
        envelope(&dup, 409, "DUPLICATE_REQUEST")?;
        let missing = w
            .post(path, Some(VIETJET_KEY), &brd_body("SJ9999999999", at))
            .await?;
        envelope(&missing, 404, "USER_NOT_FOUND")?;
        let unverified = w
            .post(
                path,
                Some(VIETJET_KEY),
                &brd_body(members::UNVERIFIED_EMAIL, at),
            )
            .await?;
        envelope(&unverified, 400, "EMAIL_NOT_VERIFIED")?;
        let blocked = w
            .post(path, Some(VIETJET_KEY), &brd_body(members::BLOCKED, at))
            .await?;
        envelope(&blocked, 400, "CLOSE_ACCOUNT_FAILED")?;
        w.sandbox.add_fault(FaultRule::on(
            Endpoint::SkyjoyUserProfile,
            Fault::FailNext {
                count: 1,
                answer: Injected {
                    status: Some(500),
                    body: None,
                },
            },
        ))?;
        let failed = w
            .post(path, Some(VIETJET_KEY), &brd_body(members::PENDING, at))
            .await?;
        envelope(&failed, 500, "CLOSE_ACCOUNT_FAILED")?;

        let none = w.post(path, None, &brd_body(members::PENDING, at)).await?;
        envelope(&none, 401, "UNAUTHENTICATED")?;
        let skyjoy = w
            .post(path, Some(SKYJOY_KEY), &brd_body(members::PENDING, at))
            .await?;
        envelope(&skyjoy, 403, "FORBIDDEN")?;
        let mut extra = brd_body(members::PENDING, at);
        extra["email"] = json!("x@y.z");
        let strict = w.post(path, Some(VIETJET_KEY), &extra).await?;
        envelope(&strict, 400, "INVALID_FIELD")?;
        w.finish().await
    })
}

fn surface(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let health = w.get("/healthz", None).await?;
        ensure!(health.status == StatusCode::OK, "{}", health.text);
        let ready = w.get("/readyz", None).await?;
        ensure!(ready.status == StatusCode::OK, "{}", ready.text);
        let metrics = w.get("/metrics", None).await?;
        ensure!(metrics.status == StatusCode::OK);
        ensure!(
            metrics.text.contains(
                r#"closeout_http_requests_total{method="POST",route="/v1/requests",status="202"} 1"#
            ),
            "{}",
            metrics.text
        );
        ensure!(
            metrics
                .text
                .contains(r#"closeout_workflows{state="waiting"} 1"#),
            "{}",
            metrics.text
        );
        ensure!(metrics
            .text
            .contains("closeout_needs_operator_oldest_age_seconds 0"));
        // The workflow ran eligibility, token removal and the SkyJoy request before its wait.
        for (step, partner) in [
            ("eligibility", "skyjoy"),
            ("remove_tokens", "vietjet"),
            ("submit_to_skyjoy", "skyjoy"),
        ] {
            let line = format!(
                r#"closeout_step_attempts_total{{definition="vietjet",outcome="done",partner="{partner}",step="{step}"}} 1"#
            );
            ensure!(
                metrics.text.contains(&line),
                "missing {line}\n{}",
                metrics.text
            );
        }
        ensure!(
            metrics
                .text
                .contains(r#"closeout_step_duration_seconds_count{definition="vietjet",partner="skyjoy",step="eligibility"} 1"#),
            "{}",
            metrics.text
        );
        ensure!(!metrics.text.contains("SJ1000"), "no member IDs in metrics");
        ensure!(
            !metrics.text.contains("SJ1000000001"),
            "no member IDs in labels"
        );

        let doc = w.get("/openapi.json", None).await?;
        ensure!(doc.status == StatusCode::OK);
        ensure!(doc.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")));
        let paths = doc.body["paths"].as_object().context("paths")?;
        for path in [
            "/v1/requests",
            "/v1/requests/{id}",
            "/api-user/partner/v1/user/deletion-request",
            "/v1/ops/requests",
            "/v1/ops/requests/{id}",
            "/v1/ops/requests/{id}/approve",
            "/v1/ops/requests/{id}/reject",
            "/v1/ops/requests/{id}/retry",
            "/v1/ops/requests/{id}/resume",
            "/v1/ops/requests/{id}/skip",
            "/v1/ops/requests/{id}/cancel",
            "/v1/ops/bulk/{action}",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            ensure!(
                paths.contains_key(path),
                "{path} missing from the OpenAPI document"
            );
        }
        let submit = &paths["/v1/requests"]["post"]["responses"];
        for status in [
            "202", "400", "401", "403", "409", "413", "422", "429", "500",
        ] {
            ensure!(
                submit.get(status).is_some(),
                "POST /v1/requests lacks {status}"
            );
        }

        // A request ID is generated, or the caller's is kept.
        let given = w
            .call(
                Method::GET,
                "/healthz",
                None,
                &[("x-request-id", "trace-me-123")],
                None,
            )
            .await?;
        ensure!(given.headers["x-request-id"] == "trace-me-123");
        let route = w.get("/nowhere", None).await?;
        ensure!(route.status == StatusCode::NOT_FOUND && route.code() == "ROUTE_NOT_FOUND");
        w.finish().await
    })
}

fn limits(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let mut config = api_config();
        config.body_limit = 2048;
        config.rate_limit = RateLimit {
            per_second: 1,
            burst: 3,
        };
        let w = world(backend, config).await?;
        let mut big = request("vietjet", members::ACTIVE_FULL);
        big["partner_member_ids"] = json!(vec!["P".repeat(100); 30]);
        let answer = w.submit(VIETJET_KEY, "big", &big).await?;
        ensure!(
            answer.status == StatusCode::PAYLOAD_TOO_LARGE && answer.code() == "BODY_TOO_LARGE",
            "{}",
            answer.text
        );
        let text = w
            .call(
                Method::POST,
                "/v1/requests",
                Some(VIETJET_KEY),
                &[("Idempotency-Key", "t"), ("content-type", "text/plain")],
                None,
            )
            .await?;
        ensure!(
            text.status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{}",
            text.text
        );
        // Two requests used the burst of three; the next two exceed it.
        let third = w.get("/v1/ops/requests/x", Some(VIETJET_KEY)).await?;
        ensure!(third.status == StatusCode::FORBIDDEN, "{}", third.text);
        let limited = w.get("/v1/requests/x", Some(VIETJET_KEY)).await?;
        ensure!(
            limited.status == StatusCode::TOO_MANY_REQUESTS && limited.code() == "RATE_LIMITED",
            "{}",
            limited.text
        );
        ensure!(limited.headers.contains_key("retry-after"));
        let other_key = w.get("/v1/requests/x", Some(SKYJOY_KEY)).await?;
        ensure!(
            other_key.status == StatusCode::NOT_FOUND,
            "keys have their own buckets"
        );
        let brd = w
            .post(
                "/api-user/partner/v1/user/deletion-request",
                Some(VIETJET_KEY),
                &brd_body(members::PENDING, "2024-03-15T04:07:32.347Z"),
            )
            .await?;
        ensure!(
            brd.status == StatusCode::TOO_MANY_REQUESTS
                && brd.body["errors"]["code"] == "RATE_LIMITED",
            "the BRD endpoint answers its own envelope: {}",
            brd.text
        );
        w.finish().await
    })
}

fn without_keys(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, closeout_api::Config::default()).await?;
        let answer = w
            .submit(VIETJET_KEY, "k", &request("vietjet", members::ACTIVE_FULL))
            .await?;
        ensure!(
            answer.status == StatusCode::UNAUTHORIZED
                && answer.text.contains("no API keys are configured"),
            "{}",
            answer.text
        );
        let ops = w.get("/v1/ops/requests", Some(OPS_READ_KEY)).await?;
        ensure!(ops.status == StatusCode::UNAUTHORIZED);
        for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            ensure!(w.get(open, None).await?.status == StatusCode::OK, "{open}");
        }
        w.finish().await
    })
}

/// Records a closure of `phone` in `scope` at `closed_at`, hashed under `keys`' current
/// version, as the closing steps and the import do; returns its release instant.
async fn close_phone(
    w: &World,
    keys: &HashKeys,
    phone: &str,
    scope: &str,
    closed_at: chrono::DateTime<Utc>,
) -> anyhow::Result<chrono::DateTime<Utc>> {
    let hash = keys.current(&closeout_cooldown::E164::parse(phone)?);
    let release_at = closeout_cooldown::release_at(closed_at);
    w.engine
        .store()
        .insert_cooldowns(&[CooldownEntry {
            scope: scope.into(),
            phone_hash: hash.hex,
            key_version: hash.key_version,
            closed_at,
            release_at,
            workflow_id: None,
        }])
        .await?;
    Ok(release_at)
}

async fn check(w: &World, key: Option<&str>, phone: &str, scope: &str) -> anyhow::Result<Answer> {
    w.post(
        "/v1/cooldown/check",
        key,
        &json!({ "phone": phone, "scope": scope }),
    )
    .await
}

fn release_of(answer: &Answer) -> anyhow::Result<Option<chrono::DateTime<Utc>>> {
    match &answer.body["release_at"] {
        Value::Null => Ok(None),
        Value::String(at) => Ok(Some(at.parse()?)),
        other => anyhow::bail!("release_at is {other}"),
    }
}

fn cooldown_check(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let keys = hash_keys(&[(1, HASH_KEY_V1)]);
        let w = world_with_keys(backend, api_config(), keys.clone()).await?;
        let phone = "+84912345678";
        // Unknown phone: allowed, no release_at.
        let answer = check(&w, Some(REGISTRAR_KEY), phone, "skyjoy").await?;
        ensure!(answer.status == StatusCode::OK, "{}", answer.text);
        ensure!(
            answer.body == json!({"allowed": true, "scope": "skyjoy"}),
            "{}",
            answer.text
        );
        // Closed ten days ago in SkyJoy: refused until six months after the close.
        let closed_at = chrono::DateTime::from_timestamp(Utc::now().timestamp() - 10 * 86_400, 0)
            .context("a valid instant")?;
        let release_at = close_phone(&w, &keys, phone, "skyjoy", closed_at).await?;
        ensure!(release_at > Utc::now() + chrono::Duration::days(150));
        for typed in [
            "+84912345678",
            "0912 345 678",
            "84912345678",
            "0912.345.678",
        ] {
            let answer = check(&w, Some(REGISTRAR_KEY), typed, "skyjoy").await?;
            ensure!(answer.status == StatusCode::OK, "{typed}: {}", answer.text);
            ensure!(answer.body["allowed"] == false, "{typed}: {}", answer.text);
            ensure!(answer.body["scope"] == "skyjoy", "{}", answer.text);
            ensure!(
                release_of(&answer)? == Some(release_at),
                "{typed}: {} (expected {release_at})",
                answer.text
            );
        }
        // Scopes are independent: the SkyJoy closure does not block a wallet, and a wallet
        // closure does not move the SkyJoy answer.
        let wallet = check(&w, Some(REGISTRAR_KEY), "0912 345 678", "wallet").await?;
        ensure!(
            wallet.body == json!({"allowed": true, "scope": "wallet"}),
            "{}",
            wallet.text
        );
        let other = "0987654321";
        let wallet_release = close_phone(&w, &keys, other, "wallet", closed_at).await?;
        let wallet = check(&w, Some(REGISTRAR_KEY), other, "wallet").await?;
        ensure!(
            wallet.body["allowed"] == false && release_of(&wallet)? == Some(wallet_release),
            "{}",
            wallet.text
        );
        let skyjoy = check(&w, Some(REGISTRAR_KEY), other, "skyjoy").await?;
        ensure!(skyjoy.body["allowed"] == true, "{}", skyjoy.text);
        // A closure whose six months have passed no longer blocks.
        let long_ago = chrono::DateTime::from_timestamp(Utc::now().timestamp() - 400 * 86_400, 0)
            .context("a valid instant")?;
        close_phone(&w, &keys, "0354841605", "skyjoy", long_ago).await?;
        let released = check(&w, Some(REGISTRAR_KEY), "0354841605", "skyjoy").await?;
        ensure!(released.body["allowed"] == true, "{}", released.text);
        // An unreadable phone: 400 naming the field, without the number.
        for bad in ["0912abc678", "0912", "", "+84 000 000 000"] {
            let answer = check(&w, Some(REGISTRAR_KEY), bad, "skyjoy").await?;
            ensure!(
                answer.status == StatusCode::BAD_REQUEST && answer.code() == "INVALID_FIELD",
                "{bad:?}: {}",
                answer.text
            );
            ensure!(answer.body["error"]["field"] == "phone", "{}", answer.text);
            ensure!(
                bad.len() < 4 || !answer.text.contains(bad),
                "the error echoes the phone: {}",
                answer.text
            );
        }
        let answer = w
            .post(
                "/v1/cooldown/check",
                Some(REGISTRAR_KEY),
                &json!({"phone": 84912345678_u64, "scope": "skyjoy"}),
            )
            .await?;
        ensure!(
            answer.status == StatusCode::BAD_REQUEST && !answer.text.contains("912345678"),
            "{}",
            answer.text
        );
        let answer = check(&w, Some(REGISTRAR_KEY), phone, "bank").await?;
        ensure!(
            answer.status == StatusCode::BAD_REQUEST && answer.body["error"]["field"] == "scope",
            "{}",
            answer.text
        );
        w.finish().await
    })
}

fn cooldown_credentials(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let phone = "0912345678";
        // No key: 401; an unknown key: 401.
        let answer = check(&w, None, phone, "skyjoy").await?;
        ensure!(answer.status == StatusCode::UNAUTHORIZED, "{}", answer.text);
        let answer = check(&w, Some("not-a-configured-key-000000"), phone, "skyjoy").await?;
        ensure!(answer.status == StatusCode::UNAUTHORIZED, "{}", answer.text);
        // Channel and operations keys may not check.
        for key in [VIETJET_KEY, SKYJOY_KEY, OPS_WRITE_KEY, OPS_READ_KEY] {
            let answer = check(&w, Some(key), phone, "skyjoy").await?;
            ensure!(
                answer.status == StatusCode::FORBIDDEN && answer.code() == "FORBIDDEN",
                "{}",
                answer.text
            );
        }
        // A registrar key may do nothing else.
        let id = w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let submit = w
            .submit(
                REGISTRAR_KEY,
                "k-registrar",
                &request("vietjet", members::ACTIVE_FULL),
            )
            .await?;
        ensure!(submit.status == StatusCode::FORBIDDEN, "{}", submit.text);
        for path in [
            format!("/v1/requests/{id}"),
            "/v1/ops/requests".to_owned(),
            format!("/v1/ops/requests/{id}"),
        ] {
            let answer = w.get(&path, Some(REGISTRAR_KEY)).await?;
            ensure!(
                answer.status == StatusCode::FORBIDDEN,
                "{path}: {}",
                answer.text
            );
        }
        let approve = w
            .post(
                &format!("/v1/ops/requests/{id}/approve"),
                Some(REGISTRAR_KEY),
                &json!({"reason": "registrar"}),
            )
            .await?;
        ensure!(approve.status == StatusCode::FORBIDDEN, "{}", approve.text);
        let brd = w
            .post(
                "/api-user/partner/v1/user/deletion-request",
                Some(REGISTRAR_KEY),
                &brd_body(members::ACTIVE_FULL, "2024-03-15T04:07:32.347Z"),
            )
            .await?;
        ensure!(brd.status == StatusCode::FORBIDDEN, "{}", brd.text);
        ensure!(w.ops_state(&id).await? == "waiting", "nothing was approved");
        // The route is in the document with every status it answers.
        let doc = w.get("/openapi.json", None).await?;
        let responses = &doc.body["paths"]["/v1/cooldown/check"]["post"]["responses"];
        for status in [
            "200", "400", "401", "403", "413", "415", "429", "500", "503",
        ] {
            ensure!(
                responses.get(status).is_some(),
                "{status} is not documented"
            );
        }
        w.finish().await
    })
}

fn cooldown_key_rotation(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let old = hash_keys(&[(1, HASH_KEY_V1)]);
        let rotated = hash_keys(&[(1, HASH_KEY_V1), (2, HASH_KEY_V2)]);
        let w = world_with_keys(backend, api_config(), rotated.clone()).await?;
        let closed_at = chrono::DateTime::from_timestamp(Utc::now().timestamp() - 86_400, 0)
            .context("a valid instant")?;
        // Hashed under version 1 before the rotation; the server now writes version 2.
        let before = close_phone(&w, &old, "0912345678", "skyjoy", closed_at).await?;
        let answer = check(&w, Some(REGISTRAR_KEY), "+84 912 345 678", "skyjoy").await?;
        ensure!(
            answer.body["allowed"] == false && release_of(&answer)? == Some(before),
            "an entry under the old key must still match: {}",
            answer.text
        );
        // And one hashed under version 2 matches too.
        let after = close_phone(&w, &rotated, "0987654321", "skyjoy", closed_at).await?;
        let answer = check(&w, Some(REGISTRAR_KEY), "0987654321", "skyjoy").await?;
        ensure!(
            answer.body["allowed"] == false && release_of(&answer)? == Some(after),
            "{}",
            answer.text
        );
        // A key the server no longer has does not match: the hash is keyed.
        let foreign = hash_keys(&[(1, "some other deployment's key, long enough")]);
        close_phone(&w, &foreign, "0354841605", "skyjoy", closed_at).await?;
        let answer = check(&w, Some(REGISTRAR_KEY), "0354841605", "skyjoy").await?;
        ensure!(answer.body["allowed"] == true, "{}", answer.text);
        w.finish().await
    })
}

/// Approves a request waiting for the operations decision and drives it to its end.
async fn approve(w: &World, id: &str) -> anyhow::Result<()> {
    let answer = w
        .post(
            &format!("/v1/ops/requests/{id}/approve"),
            Some(OPS_WRITE_KEY),
            &json!({ "reason": "verified by phone" }),
        )
        .await?;
    ensure!(answer.status == StatusCode::OK, "{}", answer.text);
    w.engine.run_until_idle().await?;
    Ok(())
}

/// Runs `closeout certificate verify` on `document`; its exit code and output.
fn verify_with_cli(document: &[u8], public_key: &str) -> anyhow::Result<(i32, String)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("certificate.json");
    std::fs::write(&file, document)?;
    let out = std::process::Command::new(closeout_it::closeout_bin())
        .current_dir(dir.path())
        .env_remove("CLOSEOUT_CONFIG")
        .args(["certificate", "verify", "--public-key", public_key])
        .arg(&file)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}

/// A completed closure's certificate: the same signed document for its channel and for
/// operations, after the purge too; it verifies (in process and with the documented
/// command) and a modified one does not; other channels, unfinished requests and a
/// server without a key are refused.
fn certificates(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let w = world(backend, api_config()).await?;
        let closed = w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let waiting = w.submitted("vietjet", members::PENDING).await?;
        approve(&w, &closed).await?;
        ensure!(w.ops_state(&closed).await? == "completed");

        let path = format!("/v1/requests/{closed}/certificate");
        let channel = w.get(&path, Some(VIETJET_KEY)).await?;
        ensure!(channel.status == StatusCode::OK, "{}", channel.text);
        let signed = w.certificates.verify(channel.text.as_bytes())?;
        let c = &signed.certificate;
        ensure!(c.request_id.to_string() == closed && c.flow == "vietjet");
        ensure!(c.skyjoy_id.as_deref() == Some(members::ACTIVE_FULL));
        ensure!(c.channel.as_deref() == Some("vietjet"));
        let step = |id: &str| c.steps.iter().find(|s| s.step == id);
        let close = step("close_skyid").context("close_skyid in the certificate")?;
        ensure!(
            close.system == "skyjoy"
                && close.outcome == "done"
                && close.action.as_deref() == Some("skyjoy.close_account")
                && close.at <= c.completed_at
                && close.record.is_some(),
            "{close:?}"
        );
        let decision = step("ops_decision").context("the decision")?;
        ensure!(
            decision.outcome == "decided" && decision.actor.as_deref() == Some("ops:alice"),
            "{decision:?}"
        );
        ensure!(
            !channel.text.contains("+8490000000") && !channel.text.contains("verified by phone"),
            "no phone and no operator reason text: {}",
            channel.text
        );
        // Tied to the audit trail: the chain's length and head when the closure ended.
        let detail = w
            .get(&format!("/v1/ops/requests/{closed}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(
            detail.body["history"].as_array().map(|h| h.len() as i64)
                == Some(c.audit.history_entries)
                && c.audit.history_head.len() == 64,
            "{:?}",
            c.audit
        );

        let ops = w
            .get(
                &format!("/v1/ops/requests/{closed}/certificate"),
                Some(OPS_READ_KEY),
            )
            .await?;
        ensure!(ops.status == StatusCode::OK, "{}", ops.text);
        ensure!(
            ops.body == channel.body,
            "one certificate whoever asks: {}",
            ops.text
        );

        // The documented command, with the public key the server publishes.
        let published = w.get("/v1/certificates/keys", None).await?;
        ensure!(published.status == StatusCode::OK, "{}", published.text);
        let (id, public) = w.certificates.signing_public_key().context("signing key")?;
        ensure!(
            published.body["signing_key_id"] == json!(id)
                && published.body["keys"][&id] == json!(public)
                && published.body["algorithm"] == "Ed25519",
            "{}",
            published.text
        );
        let trusted = format!("{id}={public}");
        let (code, out) = verify_with_cli(channel.text.as_bytes(), &trusted)?;
        ensure!(
            code == 0 && out.contains("certificate valid"),
            "{code}: {out}"
        );
        let mut modified = channel.body.clone();
        modified["certificate"]["steps"][0]["at"] = json!("2020-01-01T00:00:00Z");
        let modified = serde_json::to_vec(&modified)?;
        ensure!(
            w.certificates.verify(&modified)
                == Err(closeout_certificate::VerifyError::BadSignature),
            "a modified certificate must not verify"
        );
        let (code, out) = verify_with_cli(&modified, &trusted)?;
        ensure!(code == 1 && out.contains("INVALID"), "{code}: {out}");
        let other = closeout_certificate::Keys::generate(&id)?.0;
        let (_, other_public) = other.signing_public_key().context("key")?;
        let (code, out) =
            verify_with_cli(channel.text.as_bytes(), &format!("{id}={other_public}"))?;
        ensure!(
            code == 1 && out.contains("INVALID"),
            "another key: {code}: {out}"
        );

        // The purge erases personal data; the certificate, made from the history, stays.
        let purged = closeout_engine::store::Store::purge_finished(
            w.store.clone().into_dyn().as_ref(),
            w.clock.now() + chrono::Duration::days(1),
            w.clock.now(),
            100,
        )
        .await?;
        ensure!(purged == 1, "purged {purged}");
        let after = w.get(&path, Some(VIETJET_KEY)).await?;
        ensure!(
            after.text == channel.text,
            "after the purge: {}",
            after.text
        );

        // Refusals.
        let other_channel = w.get(&path, Some(SKYJOY_KEY)).await?;
        ensure!(
            other_channel.status == StatusCode::NOT_FOUND,
            "{}",
            other_channel.text
        );
        for (path, key) in [
            (format!("/v1/requests/{waiting}/certificate"), VIETJET_KEY),
            (
                format!("/v1/ops/requests/{waiting}/certificate"),
                OPS_READ_KEY,
            ),
        ] {
            let answer = w.get(&path, Some(key)).await?;
            ensure!(
                answer.status == StatusCode::CONFLICT
                    && answer.code() == "CERTIFICATE_NOT_AVAILABLE"
                    && answer.body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("waiting")),
                "{path}: {}",
                answer.text
            );
        }
        let anonymous = w.get(&path, None).await?;
        ensure!(
            anonymous.status == StatusCode::UNAUTHORIZED,
            "{}",
            anonymous.text
        );
        let unknown = w
            .get(
                &format!("/v1/ops/requests/{}/certificate", uuid::Uuid::new_v4()),
                Some(OPS_READ_KEY),
            )
            .await?;
        ensure!(unknown.status == StatusCode::NOT_FOUND, "{}", unknown.text);
        w.finish().await?;

        // A server with no signing key says so.
        let db = TestDb::create(backend).await;
        let store = AnyStore::connect(&db.url).await?;
        store.migrate().await?;
        let sandbox = Sandbox::start(SandboxConfig::default()).await?;
        let connectors = Connectors::new(&sandbox.connectors_config())?;
        let engine = Engine::new(
            store.clone().into_dyn(),
            Registry::new(),
            Vec::new(),
            Arc::new(ManualClock::new(Utc::now())),
            Config::new(WorkerId::parse("no-certs")?),
        )
        .await?;
        let state = closeout_api::AppState::new(
            engine,
            store,
            connectors.skyjoy,
            hash_keys(&[(1, HASH_KEY_V1)]),
            &api_config(),
        )?;
        let app = closeout_api::app(state);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let answer = reqwest::Client::new()
            .get(format!("{base}/v1/ops/requests/{closed}/certificate"))
            .bearer_auth(OPS_READ_KEY)
            .send()
            .await?;
        ensure!(answer.status() == StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = answer.json().await?;
        ensure!(
            body["error"]["code"] == "CERTIFICATES_NOT_CONFIGURED"
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("certificates.signing_key")),
            "{body}"
        );
        server.abort();
        sandbox.stop().await;
        db.drop_db().await;
        Ok(())
    })
}

/// The stuck-workflow sweep: flags past the threshold only, shows them to operations and
/// in the metrics, loses a flag when the workflow moves on or the threshold is raised,
/// flags each workflow once when two sweeps race, and runs once from the command line.
fn stuck_sweep(backend: Backend) -> TestFuture {
    Box::pin(async move {
        use closeout_engine::jobs::{sweep_stuck, Report};
        use closeout_engine::state::WorkflowState::{NeedsOperator, Running, Waiting};
        use std::time::Duration;
        let w = world(backend, api_config()).await?;
        let store = w.store.clone().into_dyn();
        let hour = Duration::from_secs(3600);
        let thresholds = [(Waiting, hour), (Running, hour), (NeedsOperator, 4 * hour)];
        let sweep =
            |owner: &'static str,
             thresholds: Vec<(closeout_engine::state::WorkflowState, Duration)>| {
                let (store, clock) = (store.clone(), w.clock.clone());
                async move {
                    sweep_stuck(
                        store.as_ref(),
                        clock.as_ref(),
                        &WorkerId::parse(owner)?,
                        &thresholds,
                        1, // one per transaction, so the batching is exercised
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(anyhow::Error::from)
                }
            };
        let first = w.submitted("vietjet", members::ACTIVE_FULL).await?;
        let second = w.submitted("vietjet", members::PENDING).await?;
        let stuck_list = || async {
            let answer = w
                .get("/v1/ops/requests?stuck=true", Some(OPS_READ_KEY))
                .await?;
            ensure!(answer.status == StatusCode::OK, "{}", answer.text);
            Ok::<_, anyhow::Error>(
                answer.body["requests"]
                    .as_array()
                    .context("requests")?
                    .iter()
                    .map(|r| r["request_id"].as_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>(),
            )
        };

        // Under the threshold: nothing.
        w.clock.advance(chrono::Duration::minutes(59));
        let (report, swept) = sweep("sweeper-a", thresholds.to_vec()).await?;
        ensure!(swept.flagged == 0 && swept.cleared == 0, "{swept:?}");
        ensure!(matches!(report, Report::Done { rows: 0, .. }), "{report:?}");
        ensure!(stuck_list().await?.is_empty());

        // Past it, two sweeps race: each workflow is flagged exactly once.
        w.clock.advance(chrono::Duration::minutes(2));
        let (a, b) = tokio::join!(
            sweep("sweeper-a", thresholds.to_vec()),
            sweep("sweeper-b", thresholds.to_vec())
        );
        let (a, b) = (a?, b?);
        ensure!(a.1.flagged + b.1.flagged == 2, "{a:?} {b:?}");
        let listed = stuck_list().await?;
        ensure!(listed == [first.clone(), second.clone()], "{listed:?}");
        let detail = w
            .get(&format!("/v1/ops/requests/{first}"), Some(OPS_READ_KEY))
            .await?;
        ensure!(
            detail.body["stuck_since"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
                == Some(w.clock.now().timestamp_millis()),
            "{}",
            detail.text
        );
        let metrics = w.get("/metrics", None).await?;
        ensure!(
            metrics
                .text
                .contains("closeout_stuck_workflows{state=\"waiting\"} 2"),
            "{}",
            metrics.text
        );
        // A second sweep changes nothing.
        let (_, again) = sweep("sweeper-a", thresholds.to_vec()).await?;
        ensure!(again.flagged == 0 && again.cleared == 0, "{again:?}");
        // Bulk actions may select the stuck ones.
        let dry = w
            .post(
                "/v1/ops/bulk/cancel",
                Some(OPS_WRITE_KEY),
                &json!({ "filter": { "stuck": true }, "reason": "stuck", "dry_run": true }),
            )
            .await?;
        ensure!(dry.body["count"] == 2, "{}", dry.text);

        // Moving on clears the flag in the engine's own commit.
        approve(&w, &first).await?;
        ensure!(w.ops_state(&first).await? == "completed");
        ensure!(stuck_list().await? == std::slice::from_ref(&second));

        // The command line, once, against the same database: with waiting thresholds
        // off, the remaining flag is cleared and it says so.
        let out = std::process::Command::new(closeout_it::closeout_bin())
            .env_remove("CLOSEOUT_CONFIG")
            .env("CLOSEOUT_STUCK__AFTER__WAITING", "off")
            .args(["--database-url", &w.db.url, "sweep"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success()
                && text.contains("flagged 0 workflows as stuck, cleared 1 flags")
                && text.contains("stuck now: 0"),
            "{}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(stuck_list().await?.is_empty());
        w.finish().await
    })
}

fn main() {
    let tests: &[(&'static str, TestFn)] = &[
        ("channel_api", channel_api),
        ("ops_decisions", ops_decisions),
        ("ops_skip_retry_resume", ops_skip_retry_resume),
        ("ops_bulk", ops_bulk),
        ("brd_endpoint", brd_endpoint),
        ("surface", surface),
        ("limits", limits),
        ("without_keys", without_keys),
        ("cooldown_check", cooldown_check),
        ("cooldown_credentials", cooldown_credentials),
        ("cooldown_key_rotation", cooldown_key_rotation),
        ("certificates", certificates),
        ("stuck_sweep", stuck_sweep),
    ];
    run_per_backend("api", tests);
}
