//! `closeout sandbox`: the partner sandbox on its own, until SIGTERM or Ctrl-C, so a
//! developer can point a real deployment's `[connectors]` at it. It prints each partner's
//! base URL, the admin URL and a `[connectors]` block ready to paste into a configuration
//! file. The credentials in that block are the sandbox's made-up defaults, not any
//! partner's.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context as _;
use closeout_connectors::Partner;
use closeout_sandbox::{Sandbox, SandboxConfig};
use strum::IntoEnumIterator as _;

/// Where `closeout sandbox` listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8700,
));

/// Runs the sandbox on `listen` until `shutdown` completes.
pub async fn run(listen: SocketAddr, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let sandbox = Sandbox::start_on(SandboxConfig::default(), listen)
        .await
        .context("starting the partner sandbox")?;
    // stdout, not the log: this is the command's output, and scripts read the URLs.
    print!("{}", banner(&sandbox));
    shutdown.await;
    sandbox.stop().await;
    eprintln!("sandbox stopped");
    Ok(())
}

/// What `closeout sandbox` prints once it listens.
pub fn banner(sandbox: &Sandbox) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sandbox listening on {}", sandbox.addr());
    for partner in Partner::iter() {
        let _ = writeln!(out, "  {:<10} {}", partner, sandbox.base_url(partner));
    }
    let _ = writeln!(out, "  {:<10} {}", "admin", sandbox.admin_url());
    let _ = writeln!(
        out,
        "\n# A closeout configuration file for this sandbox (made-up credentials, a fresh key):"
    );
    out.push_str(&config_toml(sandbox));
    let _ = writeln!(out, "\nstop with SIGTERM or Ctrl-C");
    out
}

/// A configuration that points every partner at `sandbox`: its `[connectors]`, and a
/// freshly generated development phone-hash key, since `serve` with connectors
/// configured requires one.
pub fn config_toml(sandbox: &Sandbox) -> String {
    use rand::Rng as _;
    let key: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    format!(
        "{}\n[cooldown.hash_keys]\n1 = \"{key}\"\n",
        connectors_toml(sandbox)
    )
}

/// A `[connectors]` block pointing every partner at `sandbox`.
pub fn connectors_toml(sandbox: &Sandbox) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let url = |partner| quote(sandbox.base_url(partner).as_str());
    let credentials = sandbox.credentials();
    let basic = |b: &closeout_sandbox::Basic| {
        format!(
            "{{ username = {}, password = {} }}",
            quote(&b.username),
            quote(&b.password)
        )
    };
    let mut out = String::new();
    let _ = writeln!(out, "[connectors.vietjet]");
    let _ = writeln!(out, "base_url = {}", url(Partner::Vietjet));
    let _ = writeln!(out, "skyjoy = {}", basic(&credentials.vietjet_skyjoy));
    let _ = writeln!(out, "gpay = {}", basic(&credentials.vietjet_gpay));
    for (section, partner, token) in [
        ("skyjoy", Partner::Skyjoy, &credentials.skyjoy_token),
        (
            "galaxypay",
            Partner::Galaxypay,
            &credentials.galaxypay_token,
        ),
        ("crmx", Partner::Crmx, &credentials.crmx_token),
    ] {
        let _ = writeln!(out, "\n[connectors.{section}]");
        let _ = writeln!(out, "base_url = {}", url(partner));
        let _ = writeln!(out, "access_token = {}", quote(token));
    }
    let _ = writeln!(out, "\n[connectors.kybio]");
    let _ = writeln!(out, "base_url = {}", url(Partner::Kybio));
    let _ = writeln!(out, "app_id = {}", quote(&credentials.kybio_app_id));
    let _ = writeln!(out, "app_key = {}", quote(&credentials.kybio_app_key));
    let _ = writeln!(out, "\n[connectors.email]");
    let _ = writeln!(out, "transport = \"http\"");
    let _ = writeln!(out, "base_url = {}", url(Partner::Email));
    let _ = writeln!(out, "access_token = {}", quote(&credentials.mail_token));
    let _ = writeln!(out, "from = \"no-reply@sandbox.test\"");
    out
}
