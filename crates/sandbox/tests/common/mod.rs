//! Helpers for the sandbox tests: a started sandbox with connectors pointed at it.

#![allow(dead_code)]

use closeout_connectors::{vietjet, Connectors, ConnectorsConfig, HttpOptions, SkyjoyId};
use closeout_sandbox::{member_id, Sandbox, SandboxConfig};

pub struct Harness {
    pub sandbox: Sandbox,
    pub connectors: Connectors,
    pub http: reqwest::Client,
}

/// Client timeout used where a test needs the client to give up quickly.
pub const SHORT_TIMEOUT_MS: u64 = 400;

pub async fn start() -> Harness {
    start_with(SandboxConfig::default(), HttpOptions::default()).await
}

pub async fn start_with_short_timeouts() -> Harness {
    let options = HttpOptions {
        connect_timeout_ms: SHORT_TIMEOUT_MS,
        timeout_ms: SHORT_TIMEOUT_MS,
        ..HttpOptions::default()
    };
    start_with(SandboxConfig::default(), options).await
}

pub async fn start_with(config: SandboxConfig, options: HttpOptions) -> Harness {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let mut config: ConnectorsConfig = sandbox.connectors_config();
    config.vietjet.http = options.clone();
    config.skyjoy.http = options.clone();
    config.galaxypay.http = options.clone();
    config.kybio.http = options.clone();
    config.crmx.http = options.clone();
    if let closeout_connectors::email::Config::Http(mail) = &mut config.email {
        mail.http = options;
    }
    let connectors = Connectors::new(&config).expect("connectors build");
    Harness {
        sandbox,
        connectors,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    pub fn url(&self, partner: closeout_connectors::Partner, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url(partner))
    }

    /// `GET` on an admin path, its JSON body parsed as `T`.
    pub async fn admin_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.http.get(self.admin(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.admin_url())
    }

    /// The Vietjet body identifying one of the built-in members.
    pub fn member_ref(&self, id: &str) -> vietjet::MemberRef {
        let member = self
            .sandbox
            .member(&member_id(id))
            .expect("built-in member");
        vietjet::MemberRef {
            skyjoy_id: member.skyjoy_id,
            phone: member.phone,
        }
    }

    pub fn effects_for(&self, id: &SkyjoyId) -> Vec<closeout_sandbox::Effect> {
        self.sandbox.effects(&closeout_sandbox::EffectFilter {
            member: Some(id.clone()),
            ..Default::default()
        })
    }
}
