//! `closeout serve` and `closeout sandbox` as real processes on loopback: the embedded
//! sandbox a configuration-free `serve` starts, the standalone sandbox and its admin API,
//! `[connectors]` turning the embedded sandbox off, configuration errors reported by the
//! binary, and a secret read through a `*_FILE` variable.
//!
//! Every process runs in a fresh temporary directory with the `CLOSEOUT_…` variables of
//! the calling environment removed, so the tests see only the configuration they give.

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Long enough for a debug build on a busy two-core machine; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(60);

fn closeout(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_closeout"));
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("CLOSEOUT_") {
            command.env_remove(name);
        }
    }
    command
        .env("CLOSEOUT_LOG", "info")
        .env("NO_COLOR", "1")
        // Tests run in parallel; each `serve` takes a free port for its HTTP API.
        .env("CLOSEOUT_API__LISTEN", "127.0.0.1:0")
        // serve refuses to start without definitions; the tests run in empty temp dirs.
        .env(
            "CLOSEOUT_WORKFLOWS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows"),
        )
        .env_remove("RUST_BACKTRACE");
    command
}

/// A running child whose output lines arrive on a channel as they are written.
struct Running {
    /// `None` once [`Running::terminate`] has taken it to wait on.
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts `command`, following stdout (`stdout = true`) or stderr.
    fn start(mut command: Command, stdout: bool) -> Self {
        if stdout {
            command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        } else {
            command.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let mut child = command.spawn().expect("spawning closeout");
        let stream: Box<dyn Read + Send> = if stdout {
            Box::new(child.stdout.take().unwrap())
        } else {
            Box::new(child.stderr.take().unwrap())
        };
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` and answers it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?} (process ended or timed out); output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit, then answers the status and the rest of
    /// the followed output.
    fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().expect("still running");
        let pid = child.id();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "sending SIGTERM");
        let (send, done) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = send.send(());
            (child, status)
        });
        if done.recv_timeout(PATIENCE).is_err() {
            // The waiter owns the child; killing by PID ends it so the test can report.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "closeout did not stop within {PATIENCE:?} of SIGTERM; output:\n{}",
                self.seen.join("\n")
            );
        }
        let (_, status) = waiter.join().unwrap();
        let status = status.expect("waiting for closeout");
        // The stream ends with the process, so this drains and returns.
        let rest: Vec<String> = self.lines.iter().collect();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(rest);
        (status, seen)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running.
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The text after `marker` up to the next space or comma.
fn url_after(line: &str, marker: &str) -> String {
    let start = line
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {line:?}"))
        + marker.len();
    line[start..]
        .trim_start()
        .split([' ', ','])
        .next()
        .unwrap()
        .to_owned()
}

/// GETs `url` and answers the status and the JSON body.
fn get_json(url: &str) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.expect("the sandbox answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    })
}

fn assert_members_listed(admin: &str) {
    let (status, body) = get_json(&format!("{admin}/members"));
    assert_eq!(status, 200, "{body}");
    let members = body.as_array().expect("a list of members");
    assert!(!members.is_empty(), "the sandbox is seeded: {body}");
}

#[test]
fn serve_with_no_configuration_uses_the_built_in_sandbox_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Running::start(
        {
            let mut command = closeout(dir.path());
            command.arg("serve");
            command
        },
        false,
    );
    let line = serve.wait_for("partner calls go to the built-in sandbox");
    let admin = url_after(&line, "admin API at ");
    assert!(admin.starts_with("http://127.0.0.1:"), "{line}");
    serve.wait_for("closeout engine running");
    assert_members_listed(&admin);

    let (status, output) = serve.terminate();
    assert!(
        status.success(),
        "exit {status}; output:\n{}",
        output.join("\n")
    );
    assert!(
        output.iter().any(|l| l.contains("workers stopped")),
        "{}",
        output.join("\n")
    );
    assert!(
        dir.path().join("closeout.db").exists(),
        "the default database is a SQLite file in the working directory"
    );
}

#[test]
fn serve_listens_for_its_sandbox_where_the_environment_says() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago; the OS does not hand it out again at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = closeout(dir.path());
    command
        .arg("serve")
        .env("CLOSEOUT_SANDBOX__LISTEN", format!("127.0.0.1:{port}"));
    let mut serve = Running::start(command, false);
    let line = serve.wait_for("partner calls go to the built-in sandbox");
    assert_eq!(
        url_after(&line, "admin API at "),
        format!("http://127.0.0.1:{port}/_admin")
    );
    let (status, _) = serve.terminate();
    assert!(status.success(), "exit {status}");
}

#[test]
fn the_sandbox_command_prints_its_urls_and_serve_configured_with_them_starts_no_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = closeout(dir.path());
    command.args(["sandbox", "--listen", "127.0.0.1:0"]);
    let mut sandbox = Running::start(command, true);
    let skyjoy = url_after(&sandbox.wait_for("  skyjoy "), "skyjoy ");
    let admin = url_after(&sandbox.wait_for("  admin "), "admin ");
    assert!(skyjoy.starts_with("http://127.0.0.1:"), "{skyjoy}");
    assert_members_listed(&admin);

    // The printed block (`[connectors]` and a phone-hash key) is a working configuration file.
    sandbox.wait_for("A closeout configuration file for this sandbox");
    let mut block = Vec::new();
    loop {
        let line = sandbox.wait_for("");
        if line.starts_with("stop with") {
            break;
        }
        block.push(line);
    }
    let config = dir.path().join("closeout.toml");
    std::fs::write(&config, block.join("\n")).unwrap();

    let mut command = closeout(dir.path());
    command.arg("serve").arg("--config").arg(&config);
    let mut serve = Running::start(command, false);
    serve.wait_for("closeout engine running");
    let (status, output) = serve.terminate();
    assert!(
        status.success(),
        "exit {status}; output:\n{}",
        output.join("\n")
    );
    assert!(
        !output.iter().any(|l| l.contains("built-in sandbox")),
        "[connectors] is configured, so no sandbox may start:\n{}",
        output.join("\n")
    );

    let (status, _) = sandbox.terminate();
    assert!(status.success(), "closeout sandbox exited with {status}");
}

#[test]
fn an_unknown_key_in_the_config_file_stops_serve_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("closeout.toml"),
        "[engine]\nlease_tll = \"3s\"\n",
    )
    .unwrap();
    let out = closeout(dir.path())
        .args(["serve", "--config", "closeout.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `engine.lease_tll`"), "{err}");
    assert!(
        err.contains("closeout.toml") && err.contains("`lease_ttl`"),
        "{err}"
    );
}

#[test]
fn a_flag_overrides_the_config_file_and_a_bad_value_names_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("closeout.toml"),
        "database_url = \"mysql://nowhere\"\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("flag.db").display());
    let out = closeout(dir.path())
        .args(["migrate", "--database-url", &url])
        .env("CLOSEOUT_CONFIG", "closeout.toml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("flag.db").exists());

    let out = closeout(dir.path())
        .arg("serve")
        .env("CLOSEOUT_MAX_IN_FLIGHT", "many")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable CLOSEOUT_MAX_IN_FLIGHT")
            && err.contains("`engine.max_in_flight`"),
        "{err}"
    );
}

#[test]
fn a_value_is_read_from_the_file_a_file_variable_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-secret-file.db");
    let secret = dir.path().join("database-url");
    std::fs::write(&secret, format!("sqlite://{}\n", db.display())).unwrap();
    let out = closeout(dir.path())
        .arg("migrate")
        .env("CLOSEOUT_DATABASE_URL_FILE", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "migrate used the URL from the file");
}
