//! The service configuration, in layers: built-in defaults, then an optional TOML file
//! (`--config FILE` or `CLOSEOUT_CONFIG`), then `CLOSEOUT_…` environment variables (and
//! `CLOSEOUT_…_FILE` variables naming a file that holds the value, for secrets), then the
//! command-line flags. Each layer overrides the one before it key by key.
//!
//! The layering is done by [`figment`]: it is maintained, serde-native (so the connector
//! configurations, which already derive `Deserialize` with `deny_unknown_fields`, plug in
//! as they are), and it keeps for every value the provider it came from, which is what
//! lets an error name the key *and* its source. Environment variables and secret files
//! are fed in through one small provider per variable rather than figment's `Env`, so
//! that an error names the exact variable, values are never parsed as numbers before the
//! target type asks for one (a numeric token stays a string), and unrelated `CLOSEOUT_…`
//! variables (`CLOSEOUT_LOG`, `CLOSEOUT_TEST_PG_URL`) are left alone.
//!
//! Every key, its environment variable and its default are listed in
//! `docs/configuration.md`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use closeout_connectors::ConnectorsConfig;
use figment::error::{Actual, Kind};
use figment::providers::{Format as _, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer};

/// Prefix of every environment variable the configuration reads.
pub const ENV_PREFIX: &str = "CLOSEOUT_";

/// Suffix of a variable that names a file holding the value (Docker and Kubernetes
/// secrets are mounted as files, and a file keeps the value out of `/proc/*/environ`).
pub const FILE_SUFFIX: &str = "_FILE";

/// Top-level keys; an environment variable whose first segment is not one of these
/// belongs to something else (the log filter, the test suite) and is ignored.
const SECTIONS: &[&str] = &[
    "database_url",
    "workflows",
    "diag_url",
    "engine",
    "connectors",
    "sandbox",
    "api",
    // Secrets live here (cooldown.hash_keys), so they must be settable from the
    // environment and `…_FILE` secret files like the rest.
    "cooldown",
    "callbacks",
    "retention",
    "stuck",
    "certificates",
    // Not `log`: `CLOSEOUT_LOG` is the level filter and must not parse as a section.
    "logging",
];

/// The flat environment names the engine options had before the file existed; they keep
/// working, as aliases of the `CLOSEOUT_ENGINE__…` spelling.
const ENGINE_ALIASES: &[&str] = &["worker_id", "lease_ttl", "max_in_flight", "poll_interval"];

const DOCS: &str = "docs/configuration.md";

/// The whole configuration of the `closeout` binary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub database_url: DatabaseUrl,
    /// Directory of workflow definitions (`*.toml`).
    #[serde(default = "default_workflows")]
    pub workflows: PathBuf,
    /// Effect recorder for the `diag.http` test action.
    #[serde(default)]
    pub diag_url: Option<String>,
    #[serde(default)]
    pub engine: Engine,
    /// Real partner endpoints; `None` means the built-in sandbox plays every partner.
    #[serde(default)]
    pub connectors: Option<ConnectorsConfig>,
    #[serde(default)]
    pub sandbox: Sandbox,
    /// `[api]`: the HTTP API's address, credentials (hashes only) and limits.
    #[serde(default)]
    pub api: closeout_api::Config,
    /// `[cooldown]`: the phone-hash keys and the expiry schedule.
    #[serde(default)]
    pub cooldown: Cooldown,
    /// `[callbacks]`: where each channel receives final outcomes.
    #[serde(default)]
    pub callbacks: closeout_callbacks::Config,
    /// `[retention]`: how long a finished request keeps its personal data.
    #[serde(default)]
    pub retention: Retention,
    /// `[stuck]`: the stuck-workflow sweep's thresholds and schedule.
    #[serde(default)]
    pub stuck: Stuck,
    /// `[certificates]`: the deletion-certificate signing key.
    #[serde(default)]
    pub certificates: Certificates,
    /// `[logging]`: the log format.
    #[serde(default)]
    pub logging: Logging,
}

/// `[logging]`. The level stays in `CLOSEOUT_LOG`, an `EnvFilter` directive.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (workflow and step IDs).
    Json,
}

/// `[stuck]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stuck {
    /// How long a workflow may stay in each state before the sweep flags it, by state
    /// (`running`, `waiting`, `compensating`, `needs_operator`); `off` never flags it.
    pub after: std::collections::BTreeMap<String, String>,
    /// How often `serve` runs the sweep.
    #[serde(with = "closeout_engine::duration")]
    pub sweep_every: Duration,
    /// Workflows flagged or cleared per transaction.
    pub sweep_batch: u32,
}

impl Default for Stuck {
    fn default() -> Self {
        // Waits time out after 72h in the shipped flows; one still waiting 8h later has
        // lost its timer. Running and compensating retry within minutes, so an hour in
        // either means a partner is down or a step loops.
        let after = [
            ("running", "1h"),
            ("waiting", "80h"),
            ("compensating", "1h"),
            ("needs_operator", "24h"),
        ];
        Self {
            after: after
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            sweep_every: Duration::from_secs(300),
            sweep_batch: 1000,
        }
    }
}

impl Stuck {
    /// The thresholds by state, validated.
    pub fn thresholds(
        &self,
    ) -> anyhow::Result<Vec<(closeout_engine::state::WorkflowState, Duration)>> {
        use closeout_engine::state::WorkflowState;
        let mut thresholds = Vec::new();
        for (state, after) in &self.after {
            let parsed: WorkflowState = state.parse().ok().filter(|s: &WorkflowState| !s.is_terminal()).ok_or_else(|| {
                anyhow::anyhow!(
                    "stuck.after.{state}: not a state a workflow can stay in; use running, waiting, compensating or needs_operator"
                )
            })?;
            if after.trim() == "off" {
                continue;
            }
            let after = humantime::parse_duration(after.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "stuck.after.{state}: write a duration such as 30m, 4h or 3d, or `off`"
                )
            })?;
            thresholds.push((parsed, after));
        }
        Ok(thresholds)
    }
}

/// `[certificates]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Certificates {
    /// The Ed25519 signing key: 32 random bytes, base64. Secret: redacted in `Debug`.
    pub signing_key: Option<secrecy::SecretString>,
    /// Names the signing key in each certificate, so verifiers pick the right public key
    /// after a rotation.
    pub key_id: Option<String>,
    /// Public keys (base64) of retired signing keys by key ID, so certificates they
    /// signed still verify.
    pub verify_keys: std::collections::BTreeMap<String, String>,
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// How long after a workflow ends its personal data (input, step outputs) is kept.
    #[serde(with = "closeout_engine::duration")]
    pub personal_data: Duration,
    /// How often `serve` runs the purge.
    #[serde(with = "closeout_engine::duration")]
    pub purge_every: Duration,
    /// Workflows purged per transaction.
    pub purge_batch: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            personal_data: Duration::from_secs(30 * 86_400),
            purge_every: Duration::from_secs(3600),
            purge_batch: 500,
        }
    }
}

/// `[cooldown]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cooldown {
    /// Phone-hash keys by version (`1 = "…"`, `2 = "…"`); the highest version hashes new
    /// entries, older ones keep earlier entries checkable. Secrets: redacted in `Debug`.
    pub hash_keys: std::collections::BTreeMap<String, secrecy::SecretString>,
    /// How often `serve` runs the expiry job.
    #[serde(with = "closeout_engine::duration")]
    pub expire_every: Duration,
    /// Cooldowns released per transaction by the expiry job.
    pub expire_batch: u32,
}

impl Default for Cooldown {
    fn default() -> Self {
        Self {
            hash_keys: Default::default(),
            expire_every: Duration::from_secs(3600),
            expire_batch: 10_000,
        }
    }
}

impl Cooldown {
    /// The configured keys; `Ok(None)` when none are configured.
    pub fn keys(&self) -> anyhow::Result<Option<closeout_cooldown::HashKeys>> {
        if self.hash_keys.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        for (version, key) in &self.hash_keys {
            let version: u32 = version.parse().map_err(|_| {
                anyhow::anyhow!("cooldown.hash_keys.{version}: key versions are whole numbers, e.g. cooldown.hash_keys.1")
            })?;
            keys.push((version, key.clone()));
        }
        Ok(Some(closeout_cooldown::HashKeys::new(keys)?))
    }
}

/// A database URL. `Debug` hides the password, since configurations get logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl Default for DatabaseUrl {
    fn default() -> Self {
        Self("sqlite://closeout.db".into())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::serve::redact_url(&self.0))
    }
}

fn default_workflows() -> PathBuf {
    PathBuf::from("workflows")
}

/// `[engine]`: how this process runs workers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Engine {
    /// Lease owner name; `None` means host-pid-random.
    pub worker_id: Option<String>,
    #[serde(deserialize_with = "duration")]
    pub lease_ttl: Duration,
    pub max_in_flight: usize,
    #[serde(deserialize_with = "duration")]
    pub poll_interval: Duration,
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            worker_id: None,
            lease_ttl: Duration::from_secs(60),
            max_in_flight: 256,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// `[sandbox]`: the built-in partner sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sandbox {
    /// Where the sandbox listens; a random loopback port when unset (for `serve`) and
    /// 127.0.0.1:8700 for `closeout sandbox`.
    pub listen: Option<SocketAddr>,
}

/// A duration written the way people write them: `"60s"`, `"500ms"`, `"2m"`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|_| {
        serde::de::Error::custom("not a duration; write a number with a unit such as \"60s\"")
    })
}

/// `connectors.email` is an internally tagged enum whose variants do not reject unknown
/// keys, so its keys are checked against this strict mirror before the real extraction.
#[derive(Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)] // Only the key check matters; the values are read by the real type.
enum EmailKeys {
    Http {
        base_url: serde::de::IgnoredAny,
        access_token: serde::de::IgnoredAny,
        from: serde::de::IgnoredAny,
        http: Option<serde::de::IgnoredAny>,
    },
    Smtp {
        host: serde::de::IgnoredAny,
        port: Option<serde::de::IgnoredAny>,
        tls: Option<serde::de::IgnoredAny>,
        username: Option<serde::de::IgnoredAny>,
        password: Option<serde::de::IgnoredAny>,
        from: serde::de::IgnoredAny,
        timeout_ms: Option<serde::de::IgnoredAny>,
    },
}

/// Values given on the command line; `None` leaves the key to the layers below.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub database_url: Option<String>,
    pub workflows: Option<PathBuf>,
    pub diag_url: Option<String>,
    pub worker_id: Option<String>,
    pub lease_ttl: Option<Duration>,
    pub max_in_flight: Option<usize>,
    pub poll_interval: Option<Duration>,
    pub sandbox_listen: Option<SocketAddr>,
    pub api_listen: Option<SocketAddr>,
}

impl Flags {
    fn entries(&self) -> Vec<(&'static str, String)> {
        let mut entries = Vec::new();
        let mut put = |key: &'static str, value: Option<String>| {
            if let Some(value) = value {
                entries.push((key, value));
            }
        };
        put("database_url", self.database_url.clone());
        put(
            "workflows",
            self.workflows.as_ref().map(|p| p.display().to_string()),
        );
        put("diag_url", self.diag_url.clone());
        put("engine.worker_id", self.worker_id.clone());
        let human = |d: Duration| humantime::format_duration(d).to_string();
        put("engine.lease_ttl", self.lease_ttl.map(human));
        put(
            "engine.max_in_flight",
            self.max_in_flight.map(|n| n.to_string()),
        );
        put("engine.poll_interval", self.poll_interval.map(human));
        put("sandbox.listen", self.sandbox_listen.map(|a| a.to_string()));
        put("api.listen", self.api_listen.map(|a| a.to_string()));
        entries
    }
}

/// Why the configuration cannot be used: one line per problem, each naming the key, where
/// it came from and what to write instead. Never contains a configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub problems: Vec<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration (every key is listed in {DOCS})")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl Error {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

/// Loads the configuration from the process environment, the file it names (or `file`),
/// and `flags`.
pub fn load(file: Option<&Path>, flags: &Flags) -> Result<Config, Error> {
    load_from(file, std::env::vars(), flags)
}

/// [`load`] with the environment given explicitly, so tests need not touch the process's.
pub fn load_from(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Flags,
) -> Result<Config, Error> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let file = file.map(Path::to_path_buf).or_else(|| {
        env.iter()
            .find(|(name, _)| name == "CLOSEOUT_CONFIG")
            .map(|(_, value)| PathBuf::from(value))
    });
    let mut figment = Figment::new();
    if let Some(file) = &file {
        // figment treats a missing file as empty; a file the operator named must exist.
        if !file.is_file() {
            return Err(Error::one(format!(
                "the configuration file {} does not exist; fix --config (or CLOSEOUT_CONFIG) \
                 or leave it unset to use the defaults",
                file.display()
            )));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    for layer in env_layers(&env)? {
        figment = figment.merge(layer);
    }
    for (key, value) in flags.entries() {
        figment = figment.merge(Layer::new(
            key,
            Value::from(value),
            format!("command-line flag --{}", flag_name(key)),
        ));
    }
    extract(&figment)
}

fn flag_name(key: &str) -> String {
    let leaf = match key {
        "sandbox.listen" => "listen",
        "api.listen" => "api-listen",
        other => other.rsplit('.').next().unwrap_or(other),
    };
    leaf.replace('_', "-")
}

fn extract(figment: &Figment) -> Result<Config, Error> {
    if figment.find_value("connectors.email").is_ok() {
        // Lossy: numbers and booleans from the environment arrive as strings.
        // Values inside an internally tagged enum lose their source, so the error borrows
        // the source of the section itself.
        let section = figment.find_metadata("connectors.email").map(describe);
        figment
            .extract_inner_lossy::<EmailKeys>("connectors.email")
            .map_err(|e| render(e, section))?;
    }
    figment
        .extract_lossy::<Config>()
        .map_err(|e| render(e, None))
}

/// One configuration value from one named source (an environment variable, a secret
/// file, a flag), so that errors can say exactly where a bad value came from.
struct Layer {
    data: Dict,
    source: String,
}

impl Layer {
    fn new(key: &str, value: Value, source: String) -> Self {
        let data = figment::util::nest(key, value)
            .into_dict()
            .expect("a non-empty key nests into a dictionary");
        Self { data, source }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let source = self.source.clone();
        Metadata::named(self.source.clone()).interpolater(move |_, _| source.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// The configuration key an environment variable sets, if it is one of ours:
/// `CLOSEOUT_ENGINE__LEASE_TTL` → `engine.lease_ttl`, `CLOSEOUT_LEASE_TTL` →
/// `engine.lease_ttl` (alias).
fn env_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    let path: Vec<&str> = rest.split("__").collect();
    if path.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    if path.len() == 1 && ENGINE_ALIASES.contains(&path[0]) {
        return Some(format!("engine.{}", path[0]));
    }
    SECTIONS.contains(&path[0]).then(|| path.join("."))
}

/// The variable that sets `key` in the nested spelling (the one the docs list).
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

fn env_layers(env: &[(String, String)]) -> Result<Vec<Layer>, Error> {
    let mut problems = Vec::new();
    // key → the variable that set it, to refuse two spellings of one key.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut layers = Vec::new();
    let mut sorted: Vec<&(String, String)> = env.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        let (key, value, source) = if let Some(key) = name
            .strip_suffix(FILE_SUFFIX)
            .and_then(env_key)
            .filter(|_| name != "CLOSEOUT_CONFIG")
        {
            match std::fs::read_to_string(value) {
                // A trailing newline is an artefact of how the file was written, never
                // part of a secret.
                Ok(text) => (
                    key,
                    text.trim_end_matches(['\r', '\n']).to_owned(),
                    format!("file {value} (named by environment variable {name})"),
                ),
                Err(error) => {
                    problems.push(format!(
                        "environment variable {name} names the file {value}, which cannot be \
                         read ({error}); point it at a readable file or unset it"
                    ));
                    continue;
                }
            }
        } else if let Some(key) = env_key(name) {
            (key, value.clone(), format!("environment variable {name}"))
        } else {
            continue;
        };
        if let Some((_, other)) = seen.iter().find(|(k, _)| *k == key) {
            problems.push(format!(
                "`{key}` is set by both {other} and {source}; keep only one of them"
            ));
            continue;
        }
        seen.push((key.clone(), source.clone()));
        // Strings only: the lossy extraction turns them into numbers or booleans where
        // the target type wants one, and leaves a numeric token a string otherwise.
        layers.push(Layer::new(&key, Value::from(value), source));
    }
    if problems.is_empty() {
        Ok(layers)
    } else {
        Err(Error { problems })
    }
}

/// Turns figment's errors into lines that name the key, the source and the fix, and
/// never show the offending value (it may be a secret).
fn render(error: figment::Error, fallback_source: Option<String>) -> Error {
    let problems = error
        .into_iter()
        .map(|e| {
            let path = e.path.clone();
            let key = path.join(".");
            let source = match (&e.metadata, &fallback_source) {
                (Some(metadata), _) => describe(metadata),
                (None, Some(fallback)) => fallback.clone(),
                (None, None) => "the built-in defaults".to_owned(),
            };
            let at = |k: &str| {
                if k.is_empty() {
                    "the top level".to_owned()
                } else {
                    format!("`{k}`")
                }
            };
            match &e.kind {
                Kind::UnknownField(field, expected) => {
                    // figment's path already ends with the unknown key itself.
                    let parent = if path.last() == Some(field) {
                        path[..path.len() - 1].join(".")
                    } else {
                        key.clone()
                    };
                    let full = if parent.is_empty() {
                        field.clone()
                    } else {
                        format!("{parent}.{field}")
                    };
                    format!(
                        "unknown key `{full}` in {source}; the keys allowed under {} are {}",
                        at(&parent),
                        list(expected)
                    )
                }
                Kind::MissingField(field) => {
                    let hint = if key.starts_with("connectors") {
                        "; configure every partner under [connectors], or remove [connectors] \
                         to use the built-in sandbox"
                    } else {
                        ""
                    };
                    format!(
                        "`{}` is required under {} (set in {source}){hint}",
                        field,
                        at(&key)
                    )
                }
                Kind::InvalidType(actual, expected) => format!(
                    "`{key}` in {source} is {}; write {expected}",
                    kind_of(actual)
                ),
                Kind::InvalidValue(actual, expected) => format!(
                    "`{key}` in {source} is an invalid {}; write {expected}",
                    kind_of(actual)
                ),
                Kind::UnknownVariant(_, expected) => format!(
                    "`{key}` in {source} has an unknown value; write one of {}",
                    list(expected)
                ),
                Kind::Message(message) => format!("`{key}` in {source}: {message}"),
                other => format!("`{key}` in {source}: {other}"),
            }
        })
        .collect();
    Error { problems }
}

/// A provider as a reader knows it: "TOML file /etc/closeout.toml", "environment variable
/// CLOSEOUT_LEASE_TTL".
fn describe(metadata: &Metadata) -> String {
    match &metadata.source {
        Some(figment::Source::File(file)) => format!("{} {}", metadata.name, file.display()),
        _ => metadata.name.to_string(),
    }
}

/// What kind of value was found, without the value itself.
fn kind_of(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "a value of the wrong kind",
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("closeout.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_err(file: Option<&Path>, vars: &[(&str, &str)], flags: &Flags) -> String {
        load_from(file, env(vars), flags).unwrap_err().to_string()
    }

    /// The `[connectors]` block `closeout sandbox` prints, with a made-up port.
    const CONNECTORS: &str = r#"
[connectors.vietjet]
base_url = "http://127.0.0.1:9/vietjet"
skyjoy = { username = "u", password = "vietjet-password" }

[connectors.skyjoy]
base_url = "http://127.0.0.1:9/skyjoy"
access_token = "skyjoy-token-from-file"

[connectors.galaxypay]
base_url = "http://127.0.0.1:9/galaxypay"
access_token = "g"

[connectors.crmx]
base_url = "http://127.0.0.1:9/crmx"
access_token = "c"

[connectors.kybio]
base_url = "http://127.0.0.1:9/kybio"
app_id = "1234"
app_key = "k"

[connectors.email]
transport = "http"
base_url = "http://127.0.0.1:9/email"
access_token = "m"
from = "no-reply@sandbox.test"
"#;

    #[test]
    fn defaults_apply_without_any_source() {
        let config = load_from(None, env(&[]), &Flags::default()).unwrap();
        assert_eq!(config.database_url.0, "sqlite://closeout.db");
        assert_eq!(config.workflows, PathBuf::from("workflows"));
        assert_eq!(config.engine, Engine::default());
        assert_eq!(config.engine.lease_ttl, Duration::from_secs(60));
        assert!(
            config.connectors.is_none(),
            "no connectors means the sandbox"
        );
        assert_eq!(config.sandbox.listen, None);
    }

    #[test]
    fn file_then_env_then_flags_override_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            r#"
database_url = "sqlite://from-file.db"
workflows = "defs"
[engine]
worker_id = "file-worker"
lease_ttl = "10s"
max_in_flight = 8
poll_interval = "2s"
[sandbox]
listen = "127.0.0.1:8701"
"#,
        );
        let vars = [
            ("CLOSEOUT_ENGINE__LEASE_TTL", "20s"),
            ("CLOSEOUT_MAX_IN_FLIGHT", "16"), // the flat alias
            ("CLOSEOUT_DATABASE_URL", "sqlite://from-env.db"),
        ];
        let flags = Flags {
            database_url: Some("sqlite://from-flag.db".into()),
            poll_interval: Some(Duration::from_millis(100)),
            ..Flags::default()
        };
        let config = load_from(Some(&path), env(&vars), &flags).unwrap();
        assert_eq!(
            config.database_url.0, "sqlite://from-flag.db",
            "flag beats env"
        );
        assert_eq!(
            config.workflows,
            PathBuf::from("defs"),
            "file beats default"
        );
        assert_eq!(config.engine.worker_id.as_deref(), Some("file-worker"));
        assert_eq!(
            config.engine.lease_ttl,
            Duration::from_secs(20),
            "env beats file"
        );
        assert_eq!(config.engine.max_in_flight, 16, "alias beats file");
        assert_eq!(config.engine.poll_interval, Duration::from_millis(100));
        assert_eq!(
            config.sandbox.listen,
            Some("127.0.0.1:8701".parse().unwrap())
        );
    }

    #[test]
    fn the_file_can_be_named_by_closeout_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "workflows = \"named-by-env\"\n");
        let vars = [("CLOSEOUT_CONFIG", path.to_str().unwrap())];
        let config = load_from(None, env(&vars), &Flags::default()).unwrap();
        assert_eq!(config.workflows, PathBuf::from("named-by-env"));
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = load_err(
            Some(Path::new("/nonexistent/closeout.toml")),
            &[],
            &Flags::default(),
        );
        assert!(
            err.contains("/nonexistent/closeout.toml") && err.contains("--config"),
            "{err}"
        );
    }

    #[test]
    fn unrelated_closeout_variables_are_ignored() {
        let vars = [
            ("CLOSEOUT_LOG", "debug"),
            ("CLOSEOUT_TEST_PG_URL", "postgres://x"),
            ("CLOSEOUT_BENCH_PG_URL", "postgres://y"),
            ("OTHER_ENGINE__LEASE_TTL", "nonsense"),
        ];
        let config = load_from(None, env(&vars), &Flags::default()).unwrap();
        assert_eq!(config.engine, Engine::default());
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named_with_its_file_and_the_allowed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "[engine]\nlease_tll = \"3s\"\n");
        let err = load_err(Some(&path), &[], &Flags::default());
        assert!(err.contains("unknown key `engine.lease_tll`"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("`lease_ttl`"), "{err}");
    }

    #[test]
    fn an_unknown_top_level_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "databse_url = \"sqlite://x.db\"\n");
        let err = load_err(Some(&path), &[], &Flags::default());
        assert!(err.contains("unknown key `databse_url`"), "{err}");
        assert!(err.contains("`database_url`"), "{err}");
    }

    #[test]
    fn an_unknown_key_under_connectors_email_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = CONNECTORS.replace("from = ", "sender = \"x@y.z\"\nfrom = ");
        let path = file(&dir, &text);
        let err = load_err(Some(&path), &[], &Flags::default());
        assert!(
            err.contains("unknown key `connectors.email.sender`"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn an_unknown_key_from_the_environment_names_the_variable() {
        let vars = [("CLOSEOUT_ENGINE__LEASE_TLL", "3s")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(
            err.contains("environment variable CLOSEOUT_ENGINE__LEASE_TLL"),
            "{err}"
        );
        assert!(err.contains("unknown key `engine.lease_tll`"), "{err}");
    }

    #[test]
    fn a_bad_value_names_key_and_source_but_not_the_value() {
        let vars = [("CLOSEOUT_ENGINE__MAX_IN_FLIGHT", "lots-and-lots")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("`engine.max_in_flight`"), "{err}");
        assert!(err.contains("CLOSEOUT_ENGINE__MAX_IN_FLIGHT"), "{err}");
        assert!(
            !err.contains("lots-and-lots"),
            "values are never echoed: {err}"
        );

        let vars = [("CLOSEOUT_LEASE_TTL", "soon")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(
            err.contains("`engine.lease_ttl`") && err.contains("\"60s\""),
            "{err}"
        );
    }

    #[test]
    fn two_spellings_of_one_key_are_refused() {
        let vars = [
            ("CLOSEOUT_LEASE_TTL", "3s"),
            ("CLOSEOUT_ENGINE__LEASE_TTL", "4s"),
        ];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("CLOSEOUT_LEASE_TTL") && err.contains("CLOSEOUT_ENGINE__LEASE_TTL"));
    }

    #[test]
    fn connectors_from_the_file_turn_the_sandbox_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, CONNECTORS);
        let config = load_from(Some(&path), env(&[]), &Flags::default()).unwrap();
        let connectors = config.connectors.expect("connectors configured");
        assert_eq!(
            connectors.kybio.app_id, "1234",
            "a numeric token stays a string"
        );
    }

    #[test]
    fn a_secret_comes_from_the_file_named_by_a_file_variable_and_stays_redacted() {
        use secrecy::ExposeSecret as _;
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, CONNECTORS);
        let secret = dir.path().join("skyjoy-token");
        std::fs::write(&secret, "s3cret-from-a-file\n").unwrap();
        let vars = [(
            "CLOSEOUT_CONNECTORS__SKYJOY__ACCESS_TOKEN_FILE",
            secret.to_str().unwrap(),
        )];
        let config = load_from(Some(&path), env(&vars), &Flags::default()).unwrap();
        let connectors = config.connectors.clone().unwrap();
        assert_eq!(
            connectors.skyjoy.access_token.expose_secret(),
            "s3cret-from-a-file",
            "the file beats the config file, without its trailing newline"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-from-a-file"), "{debug}");
        assert!(!debug.contains("vietjet-password"), "{debug}");
    }

    #[test]
    fn a_secret_variable_and_its_file_variable_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "t").unwrap();
        let vars = [
            ("CLOSEOUT_CONNECTORS__SKYJOY__ACCESS_TOKEN", "t"),
            (
                "CLOSEOUT_CONNECTORS__SKYJOY__ACCESS_TOKEN_FILE",
                secret.to_str().unwrap(),
            ),
        ];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("keep only one"), "{err}");
    }

    #[test]
    fn an_unreadable_secret_file_is_named() {
        let vars = [("CLOSEOUT_DATABASE_URL_FILE", "/nonexistent/db-url")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("CLOSEOUT_DATABASE_URL_FILE") && err.contains("/nonexistent/db-url"));
    }

    #[test]
    fn partial_connectors_say_what_is_missing_and_the_way_back_to_the_sandbox() {
        let vars = [("CLOSEOUT_CONNECTORS__SKYJOY__ACCESS_TOKEN", "t")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("is required under `connectors"), "{err}");
        assert!(err.contains("remove [connectors]"), "{err}");
        assert!(!err.contains("`t`"), "{err}");
    }

    #[test]
    fn the_database_password_is_redacted_in_debug() {
        let flags = Flags {
            database_url: Some("postgres://app:hunter2@db/closeout".into()),
            ..Flags::default()
        };
        let config = load_from(None, env(&[]), &flags).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn api_keys_come_from_the_file_or_the_environment_as_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let path = file(
            &dir,
            &format!(
                "[api]\nlisten = \"127.0.0.1:9090\"\nbody_limit = 1024\n\
                 [api.channels.vietjet]\nkey_hashes = [\"{a}\"]\n\
                 [api.operators.alice]\nrole = \"write\"\nkey_hashes = [\"{b}\"]\n"
            ),
        );
        let config = load_from(Some(&path), env(&[]), &Flags::default()).unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.api.body_limit, 1024);
        assert_eq!(config.api.channels["vietjet"].key_hashes, vec![a.clone()]);
        assert_eq!(
            config.api.operators["alice"].role,
            closeout_api::auth::Role::Write
        );

        // Rotation from the environment: two hashes in one variable.
        let both = format!("{a},{b}");
        let vars = [
            ("CLOSEOUT_API__CHANNELS__SKYJOY__KEY_HASHES", both.as_str()),
            ("CLOSEOUT_API__RATE_LIMIT__PER_SECOND", "5"),
        ];
        let config = load_from(None, env(&vars), &Flags::default()).unwrap();
        assert_eq!(config.api.channels["skyjoy"].key_hashes, vec![a, b]);
        assert_eq!(config.api.rate_limit.per_second, 5);
        assert!(config.api.has_keys());

        let defaults = load_from(None, env(&[]), &Flags::default()).unwrap();
        assert_eq!(defaults.api.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(!defaults.api.has_keys());
    }

    #[test]
    fn an_unknown_api_key_is_named() {
        let vars = [("CLOSEOUT_API__LISTEN_ADDR", "127.0.0.1:1")];
        let err = load_err(None, &vars, &Flags::default());
        assert!(err.contains("unknown key `api.listen_addr`"), "{err}");
    }

    #[test]
    fn env_names_follow_the_key_path() {
        assert_eq!(env_name("engine.lease_ttl"), "CLOSEOUT_ENGINE__LEASE_TTL");
        assert_eq!(
            env_key("CLOSEOUT_SANDBOX__LISTEN").as_deref(),
            Some("sandbox.listen")
        );
        assert_eq!(
            env_key("CLOSEOUT_WORKER_ID").as_deref(),
            Some("engine.worker_id")
        );
        assert_eq!(env_key("CLOSEOUT_LOG"), None);
    }
}
