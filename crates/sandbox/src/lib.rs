//! Simulated partner systems on loopback: Vietjet, SkyJoy, Galaxy Pay, KYBIO, CRMX and an
//! HTTP mail API, with the seeds' paths, auth checks and error bodies, real state changes,
//! fault injection, an effects ledger and captured email.
//!
//! ```no_run
//! # async fn demo() -> Result<(), closeout_sandbox::Error> {
//! use closeout_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let connectors = sandbox.connectors_config(); // base URLs and made-up credentials
//! # drop(connectors);
//! sandbox.stop().await;
//! # Ok(()) }
//! ```
//!
//! One listener serves every partner under a path prefix named after
//! [`closeout_connectors::Partner`] (`/vietjet`, `/skyjoy`, `/galaxypay`, `/kybio`, `/crmx`,
//! `/email`) and the admin API under `/_admin` (see [`admin`]'s docs). Repeated effect calls
//! with the same `Idempotency-Key` are answered from a store and never applied twice (see
//! the `world` module docs). Stopping (by [`Sandbox::stop`] or drop) ends hanging
//! "apply then time out" responses at once and shuts the server down gracefully.

mod admin;
mod auth;
mod crmx;
mod faults;
mod galaxypay;
mod kybio;
mod mail;
mod model;
mod skyjoy;
mod vietjet;
mod world;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use closeout_connectors::{
    crmx as crmx_api, email as email_api, galaxypay as galaxypay_api, kybio as kybio_api,
    skyjoy as skyjoy_api, vietjet as vietjet_api, ConnectorsConfig, EmailAddress, HttpOptions,
    Partner, SkyjoyId,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

pub use faults::{ActiveFault, Fault, FaultRule, Injected, InvalidFault};
pub use model::{
    default_members, member_id, members, CrmxRecord, KybioRecord, Member, VietjetAccount,
    WalletState,
};
pub use world::{CapturedEmail, Effect, EffectFilter};

use world::{Shared, State, World};

/// `Result` with the sandbox [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "could not bind the sandbox on {addr}: {source}; choose another address or free the port"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid fault rule in the sandbox configuration: {0}")]
    Fault(#[from] InvalidFault),
    #[error("two seeded members share the SkyJoy ID {0}; give each member its own")]
    DuplicateMember(String),
}

/// HTTP Basic credentials the simulated Vietjet accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basic {
    pub username: String,
    pub password: String,
}

/// The credentials the simulated partners accept. The defaults are made up for the sandbox
/// and are not any partner's real or staging credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    pub vietjet_skyjoy: Basic,
    pub vietjet_gpay: Basic,
    pub skyjoy_token: String,
    pub galaxypay_token: String,
    pub kybio_app_id: String,
    pub kybio_app_key: String,
    pub crmx_token: String,
    pub mail_token: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            vietjet_skyjoy: Basic {
                username: "sandbox-skyjoy".into(),
                password: "sandbox-skyjoy-password".into(),
            },
            vietjet_gpay: Basic {
                username: "sandbox-gpay".into(),
                password: "sandbox-gpay-password".into(),
            },
            skyjoy_token: "sandbox-skyjoy-token".into(),
            galaxypay_token: "sandbox-galaxypay-token".into(),
            kybio_app_id: "sandbox-kybio-app".into(),
            kybio_app_key: "sandbox-kybio-key".into(),
            crmx_token: "sandbox-crmx-token".into(),
            mail_token: "sandbox-mail-token".into(),
        }
    }
}

/// How to start the sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The members the partners know; [`default_members`] unless given.
    pub members: Vec<Member>,
    pub credentials: Credentials,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Seed of the generator behind `error_rate` faults.
    pub rng_seed: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            members: default_members(),
            credentials: Credentials::default(),
            faults: Vec::new(),
            rng_seed: 0,
        }
    }
}

/// A running sandbox. Stops when dropped.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: State,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Starts on an ephemeral loopback port.
    pub async fn start(config: SandboxConfig) -> Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on the given address (the CLI's `closeout sandbox --listen`).
    pub async fn start_on(config: SandboxConfig, addr: SocketAddr) -> Result<Self> {
        let mut seen = HashSet::new();
        for member in &config.members {
            if !seen.insert(member.skyjoy_id.clone()) {
                return Err(Error::DuplicateMember(member.skyjoy_id.as_str().to_owned()));
            }
        }
        let mut faults = faults::Faults::new(config.rng_seed);
        for rule in config.faults {
            faults.add(rule)?;
        }
        let (stop, stopping) = watch::channel(false);
        let recorded = Arc::new(watch::channel(0).0);
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(config.members.clone(), recorded.clone())),
            recorded,
            faults: Mutex::new(faults),
            credentials: config.credentials,
            seed: config.members,
            stop: stopping.clone(),
        });
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let app = app(shared.clone());
        let mut until_stopped = stopping;
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = until_stopped.wait_for(|stopping| *stopping).await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "sandbox server ended with an error");
            }
        });
        tracing::info!(%addr, "sandbox listening");
        Ok(Self {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a connector for `partner` should use.
    pub fn base_url(&self, partner: Partner) -> Url {
        Url::parse(&format!("http://{}/{partner}", self.addr)).expect("loopback URL is valid")
    }

    pub fn admin_url(&self) -> Url {
        Url::parse(&format!("http://{}/_admin", self.addr)).expect("loopback URL is valid")
    }

    /// A connectors configuration pointing at this sandbox with its credentials.
    pub fn connectors_config(&self) -> ConnectorsConfig {
        let credentials = &self.shared.credentials;
        let secret = |value: &str| SecretString::from(value.to_owned());
        let basic = |b: &Basic| vietjet_api::Credentials {
            username: b.username.clone(),
            password: secret(&b.password),
        };
        ConnectorsConfig {
            vietjet: vietjet_api::Config {
                base_url: self.base_url(Partner::Vietjet),
                skyjoy: Some(basic(&credentials.vietjet_skyjoy)),
                gpay: Some(basic(&credentials.vietjet_gpay)),
                http: HttpOptions::default(),
            },
            skyjoy: skyjoy_api::Config {
                base_url: self.base_url(Partner::Skyjoy),
                access_token: secret(&credentials.skyjoy_token),
                http: HttpOptions::default(),
            },
            galaxypay: galaxypay_api::Config {
                base_url: self.base_url(Partner::Galaxypay),
                access_token: secret(&credentials.galaxypay_token),
                http: HttpOptions::default(),
            },
            kybio: kybio_api::Config {
                base_url: self.base_url(Partner::Kybio),
                app_id: credentials.kybio_app_id.clone(),
                app_key: secret(&credentials.kybio_app_key),
                http: HttpOptions::default(),
            },
            crmx: crmx_api::Config {
                base_url: self.base_url(Partner::Crmx),
                access_token: secret(&credentials.crmx_token),
                http: HttpOptions::default(),
            },
            email: email_api::Config::Http(email_api::HttpApiConfig {
                base_url: self.base_url(Partner::Email),
                access_token: secret(&credentials.mail_token),
                from: EmailAddress::parse("no-reply@sandbox.test").expect("valid address"),
                http: HttpOptions::default(),
            }),
        }
    }

    /// The credentials the simulated partners accept.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// Effects so far, oldest first, narrowed by `filter`.
    pub fn effects(&self, filter: &EffectFilter) -> Vec<Effect> {
        self.shared.world().effects(filter)
    }

    /// Waits until at least `count` effects match `filter` and answers them; for tests that
    /// must know a call reached the sandbox (for instance one now hanging after its effect).
    /// Answers what there is if the sandbox stops first.
    pub async fn wait_for_effects(&self, filter: &EffectFilter, count: usize) -> Vec<Effect> {
        let mut recorded = self.shared.recorded.subscribe();
        let mut stop = self.shared.stop.clone();
        loop {
            let found = self.effects(filter);
            if found.len() >= count {
                return found;
            }
            tokio::select! {
                changed = recorded.changed() => if changed.is_err() { return found },
                _ = stop.wait_for(|stopping| *stopping) => return found,
            }
        }
    }

    /// Emails the mail API accepted, oldest first.
    pub fn emails(&self) -> Vec<CapturedEmail> {
        self.shared.world().emails.clone()
    }

    /// A member's current state at every partner.
    pub fn member(&self, id: &SkyjoyId) -> Option<Member> {
        self.shared.world().member(id).cloned()
    }

    /// Adds a fault rule; answers its ID.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, InvalidFault> {
        self.shared.faults().add(rule)
    }

    pub fn faults(&self) -> Vec<ActiveFault> {
        self.shared.faults().list()
    }

    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Members back to the seed; ledger, emails, stored answers and faults cleared.
    pub fn reset(&self) {
        reset(&self.shared);
    }

    /// Stops accepting calls, ends hanging responses, and waits for the server to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn reset(state: &State) {
    *state.world() = admin::fresh_world(state);
    state.faults().clear();
}

/// Every partner and the admin API on one router.
fn app(state: State) -> Router {
    Router::new()
        .nest(&format!("/{}", Partner::Vietjet), vietjet::router())
        .nest(&format!("/{}", Partner::Skyjoy), skyjoy::router())
        .nest(&format!("/{}", Partner::Galaxypay), galaxypay::router())
        .nest(&format!("/{}", Partner::Kybio), kybio::router())
        .nest(&format!("/{}", Partner::Crmx), crmx::router())
        .nest(&format!("/{}", Partner::Email), mail::router())
        .nest("/_admin", admin::router())
        .with_state(state)
}
