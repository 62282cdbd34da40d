//! `closeout requests`: the operations CLI. It speaks to a running Closeout's operations
//! API (`/v1/ops`, docs/api.md) with an operations credential, so it needs network access
//! to the API and nothing else: no database URL, no configuration file. People get
//! tables; scripts get the API's JSON with `--json` and the exit statuses in [`exit`].
//! docs/ops-cli.md is the manual.

mod client;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use serde_json::{json, Value};
use uuid::Uuid;

use client::Client;
pub use client::{ApiError, Error};

/// The exit statuses of `closeout requests`, one per thing the operator does next.
pub mod exit {
    /// Done.
    pub const OK: i32 = 0;
    /// The API refused: unknown request (404), not allowed in its state (409), or some
    /// requests of a bulk action failed. Look at the request.
    pub const REFUSED: i32 = 1;
    /// Bad arguments (also clap's own status), input the API refused (400), or a bulk
    /// action without `--yes`. Fix the command.
    pub const USAGE: i32 = 2;
    /// The API cannot be reached at `--url`, or what answers there is not the API. Fix
    /// `--url` or the network.
    pub const CONNECT: i32 = 3;
    /// No credential, an unreadable one, one the API does not know (401) or one without
    /// the role (403). Fix the credential.
    pub const CREDENTIAL: i32 = 4;
    /// The API cannot do it right now (busy, rate limited, 5xx). Try again later.
    pub const UNAVAILABLE: i32 = 5;
}

/// The API's page size when `--limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

const AFTER_HELP: &str = "\
Connection: --url, or CLOSEOUT_OPS_URL (default http://127.0.0.1:8080). The operations
credential is read from --key-file PATH or, without it, from the CLOSEOUT_OPS_KEY
environment variable; never from a flag value, which shell history and the process list
would keep.

Exit status:
  0  done
  1  refused: unknown request (404), not allowed in its state (409), or some requests
     of a bulk action failed
  2  usage: bad arguments, input the API refused (400), or bulk without --yes
  3  cannot reach the Closeout API at --url (refused, DNS, TLS, timeout, not the API)
  4  credential: missing or unreadable, unknown to the API (401), or without the role
     (403: read lists and shows, write acts)
  5  the API cannot do it right now (busy, rate limited, 5xx): try again later

Manual: docs/ops-cli.md";

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Base URL of the Closeout API
    #[arg(
        long,
        global = true,
        env = "CLOSEOUT_OPS_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// File holding the operations credential; without it, CLOSEOUT_OPS_KEY is read
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Print the API's JSON (answers and error bodies) instead of tables, for scripts
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up waiting for an answer after this long
    #[arg(long, global = true, default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List requests, oldest in their state first: ID, flow, state, current step, time in
    /// that state, channel.
    #[command(after_help = AFTER_HELP)]
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many, 1 to 1000 [default: 100]
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
        limit: Option<u32>,
    },
    /// One request: its summary, its steps with their attempts, and its full history.
    #[command(after_help = AFTER_HELP)]
    Show {
        /// The request ID
        id: Uuid,
    },
    /// Print the signed deletion certificate of a completed request (JSON, whatever
    /// --json says); check it with `closeout certificate verify -`.
    #[command(after_help = AFTER_HELP)]
    Certificate {
        /// The request ID
        id: Uuid,
    },
    /// Approve a request waiting at its operations decision: it carries on to close.
    #[command(after_help = AFTER_HELP)]
    Approve(Action),
    /// Reject a request waiting at its operations decision: completed compensatable steps
    /// are undone and it ends `rejected`.
    #[command(after_help = AFTER_HELP)]
    Reject(Action),
    /// Run the next attempt of a step that is waiting to retry, now.
    #[command(after_help = AFTER_HELP)]
    Retry(Action),
    /// Resume a request that needs an operator (`needs_operator`).
    #[command(after_help = AFTER_HELP)]
    Resume(Action),
    /// Skip the current step, recording --output as what it would have produced (later
    /// steps may read it).
    #[command(after_help = AFTER_HELP)]
    Skip {
        #[command(flatten)]
        action: Action,
        /// The step's output as JSON, e.g. '{"status": "ACTIVE"}'
        #[arg(long, required = true, value_name = "JSON", value_parser = json_value)]
        output: Value,
    },
    /// Cancel a request: completed compensatable steps are undone and it ends `cancelled`.
    #[command(after_help = AFTER_HELP)]
    Cancel(Action),
    /// Retry, resume or cancel every request matching a filter (at most --limit of them).
    #[command(subcommand)]
    Bulk(BulkCommand),
}

/// One request and why.
#[derive(Debug, clap::Args)]
pub struct Action {
    /// The request ID
    pub id: Uuid,
    /// Why; recorded in the history with your credential's name (at most 1000 characters)
    #[arg(long, required = true, value_parser = NonEmptyStringValueParser::new())]
    pub reason: String,
}

/// Filters shared by `list` and `bulk`; every one given must match.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// States, comma-separated or repeated: running, waiting, compensating, needs_operator,
    /// completed, compensated, rejected, cancelled
    #[arg(long, value_delimiter = ',', value_name = "STATE")]
    pub state: Vec<String>,
    /// The flow: vietjet, skyjoy or galaxypay
    #[arg(long)]
    pub flow: Option<String>,
    /// The channel that submitted the request
    #[arg(long)]
    pub channel: Option<String>,
    /// The current step, e.g. ops_decision
    #[arg(long)]
    pub step: Option<String>,
    /// The member's SkyJoy ID
    #[arg(long, value_name = "ID")]
    pub skyjoy_id: Option<String>,
    /// Only requests in their state for at least this long: 30m, 1h, 2d
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    pub older_than: Option<String>,
    /// Only requests the stuck-workflow sweep has flagged
    #[arg(long)]
    pub stuck: bool,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.state.is_empty()
            && self.flow.is_none()
            && self.channel.is_none()
            && self.step.is_none()
            && self.skyjoy_id.is_none()
            && self.older_than.is_none()
            && !self.stuck
    }

    /// The criteria by their API names, as the list's query and the bulk filter take them.
    fn pairs(&self, limit: Option<u32>) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if !self.state.is_empty() {
            pairs.push(("state", self.state.join(",")));
        }
        let optional = [
            ("flow", &self.flow),
            ("channel", &self.channel),
            ("step", &self.step),
            ("skyjoy_id", &self.skyjoy_id),
            ("older_than", &self.older_than),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        if self.stuck {
            pairs.push(("stuck", "true".to_owned()));
        }
        if let Some(limit) = limit {
            pairs.push(("limit", limit.to_string()));
        }
        pairs
    }

    fn json(&self, limit: Option<u32>) -> Value {
        let mut filter = serde_json::Map::new();
        for (name, value) in self.pairs(None) {
            // The bulk body is typed JSON: `stuck` is a boolean there, not query text.
            let value = match name {
                "stuck" => Value::Bool(true),
                _ => Value::String(value),
            };
            filter.insert(name.to_owned(), value);
        }
        if let Some(limit) = limit {
            filter.insert("limit".to_owned(), json!(limit));
        }
        Value::Object(filter)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum BulkCommand {
    /// Run the waiting retry now on every match.
    #[command(after_help = AFTER_HELP)]
    Retry(Bulk),
    /// Resume every matching `needs_operator` request.
    #[command(after_help = AFTER_HELP)]
    Resume(Bulk),
    /// Cancel every match; completed compensatable steps are undone.
    #[command(after_help = AFTER_HELP)]
    Cancel(Bulk),
}

impl BulkCommand {
    fn parts(&self) -> (&'static str, &Bulk) {
        match self {
            Self::Retry(b) => ("retry", b),
            Self::Resume(b) => ("resume", b),
            Self::Cancel(b) => ("cancel", b),
        }
    }
}

/// A bulk action: the filter (at least one criterion), why, and whether to apply it.
#[derive(Debug, clap::Args)]
pub struct Bulk {
    #[command(flatten)]
    pub filter: Filter,
    /// Act on at most this many matches, oldest in their state first, 1 to 1000
    /// [default: 100]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
    pub limit: Option<u32>,
    /// Why; recorded in each request's history with your credential's name
    #[arg(long, required = true, value_parser = NonEmptyStringValueParser::new())]
    pub reason: String,
    /// Only count and list the matches; change nothing
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Apply. Without it (and without --dry-run) the matches are listed, nothing is
    /// changed, and the exit status is 2
    #[arg(long)]
    pub yes: bool,
}

fn json_value(text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("not JSON ({e}); write e.g. --output '{{\"status\": \"ACTIVE\"}}'"))
}

/// Checked here so a typo fails before anything is sent; the API gets the text as typed.
fn duration_text(text: &str) -> Result<String, String> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{e}; write e.g. 30m, 1h or 2d"))
}

/// Runs one `closeout requests` command, printing its answer to stdout. The caller prints
/// the error (to stderr) and exits with [`Error::exit_code`]. With `--json`, the API's
/// error body also goes to stdout, so a script reads every answer from one place.
pub async fn run(args: Args) -> Result<(), Error> {
    let json = args.connection.json;
    let result = execute(args).await;
    if json {
        if let Some(body) = result.as_ref().err().and_then(Error::api_body) {
            emit(&pretty(body));
        }
    }
    result
}

async fn execute(args: Args) -> Result<(), Error> {
    let Args {
        connection,
        command,
    } = args;
    if let Command::Bulk(bulk) = &command {
        if bulk.parts().1.filter.is_empty() {
            return Err(Error::Usage(
                "a bulk action needs at least one of --state, --flow, --channel, --step, \
                 --skyjoy-id, --older-than, --stuck; it never applies to everything"
                    .into(),
            ));
        }
    }
    let client = Client::new(
        &connection.url,
        connection.key_file.as_deref(),
        connection.timeout,
    )?;
    if let Some(warning) = client.cleartext_warning() {
        eprintln!("{warning}");
    }
    let json = connection.json;
    match command {
        Command::List { filter, limit } => {
            let answer = client.get("v1/ops/requests", &filter.pairs(limit)).await?;
            if json {
                emit(&pretty(&answer));
            } else {
                let list: render::List = client.decode(answer)?;
                emit(&render::list(&list, limit.unwrap_or(DEFAULT_LIMIT)));
            }
        }
        Command::Show { id } => {
            let answer = client.get(&format!("v1/ops/requests/{id}"), &[]).await?;
            if json {
                emit(&pretty(&answer));
            } else {
                let detail: render::Detail = client.decode(answer)?;
                emit(&render::detail(&detail));
            }
        }
        Command::Certificate { id } => {
            let answer = client
                .get(&format!("v1/ops/requests/{id}/certificate"), &[])
                .await?;
            emit(&pretty(&answer));
        }
        Command::Approve(a) => act(&client, json, "approve", &a, None).await?,
        Command::Reject(a) => act(&client, json, "reject", &a, None).await?,
        Command::Retry(a) => act(&client, json, "retry", &a, None).await?,
        Command::Resume(a) => act(&client, json, "resume", &a, None).await?,
        Command::Cancel(a) => act(&client, json, "cancel", &a, None).await?,
        Command::Skip { action, output } => {
            act(&client, json, "skip", &action, Some(output)).await?;
        }
        Command::Bulk(bulk) => {
            let (action, args) = bulk.parts();
            bulk_action(&client, json, action, args).await?;
        }
    }
    Ok(())
}

async fn act(
    client: &Client,
    json: bool,
    name: &str,
    action: &Action,
    output: Option<Value>,
) -> Result<(), Error> {
    let mut body = json!({ "reason": action.reason });
    if let Some(output) = output {
        body["output"] = output;
    }
    let answer = client
        .post(&format!("v1/ops/requests/{}/{name}", action.id), &body)
        .await?;
    if json {
        emit(&pretty(&answer));
    } else {
        let detail: render::Detail = client.decode(answer)?;
        emit(&render::acted(name, &detail));
    }
    Ok(())
}

async fn bulk_action(
    client: &Client,
    json: bool,
    action: &'static str,
    args: &Bulk,
) -> Result<(), Error> {
    let path = format!("v1/ops/bulk/{action}");
    let request = |dry_run: bool| {
        json!({
            "filter": args.filter.json(args.limit),
            "reason": args.reason,
            "dry_run": dry_run,
        })
    };
    let show = |answer: &Value| -> Result<render::BulkResult, Error> {
        let result: render::BulkResult = client.decode(answer.clone())?;
        if json {
            emit(&pretty(answer));
        } else {
            emit(&render::bulk(action, &result, args.limit));
        }
        Ok(result)
    };
    // Without --yes a bulk action only shows what it would touch: acting on a filter
    // typed by hand is too easy to get wrong, and a script that forgot --yes must not
    // read success.
    let dry_run = args.dry_run || !args.yes;
    let result = show(&client.post(&path, &request(dry_run)).await?)?;
    if dry_run {
        if !args.dry_run && result.count > 0 {
            return Err(Error::Unconfirmed {
                action,
                count: result.count,
            });
        }
        return Ok(());
    }
    if !result.failed.is_empty() {
        return Err(Error::BulkFailures {
            action,
            failed: result.failed.len(),
            count: result.count,
        });
    }
    Ok(())
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Writes to stdout. A closed pipe (`… | head`) is not an error worth a message: the
/// reader has what it wanted, and the API call has already happened either way.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Requests(Args),
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        let Top::Requests(args) =
            Cli::try_parse_from(["closeout", "requests"].iter().chain(args))?.command;
        Ok(args)
    }

    #[test]
    fn filters_become_the_apis_criteria() {
        let args = parse(&[
            "list",
            "--state",
            "waiting,needs_operator",
            "--flow",
            "vietjet",
            "--skyjoy-id",
            "SJ1000000001",
            "--older-than",
            "1h",
            "--stuck",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::List { filter, limit } = args.command else {
            panic!("list");
        };
        assert_eq!(
            filter.pairs(limit),
            [
                ("state", "waiting,needs_operator".to_owned()),
                ("flow", "vietjet".to_owned()),
                ("skyjoy_id", "SJ1000000001".to_owned()),
                ("older_than", "1h".to_owned()),
                ("stuck", "true".to_owned()),
                ("limit", "5".to_owned()),
            ]
        );
        assert_eq!(
            filter.json(limit),
            json!({"state": "waiting,needs_operator", "flow": "vietjet",
                   "skyjoy_id": "SJ1000000001", "older_than": "1h", "stuck": true, "limit": 5})
        );
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_sent() {
        let id = Uuid::new_v4().to_string();
        for bad in [
            vec!["approve", id.as_str()],
            vec!["approve", id.as_str(), "--reason", ""],
            vec!["approve", "not-a-uuid", "--reason", "x"],
            vec!["skip", id.as_str(), "--reason", "x", "--output", "{oops"],
            vec!["skip", id.as_str(), "--reason", "x"],
            vec!["list", "--older-than", "soon"],
            vec!["list", "--limit", "0"],
            vec!["list", "--limit", "1001"],
            vec![
                "bulk",
                "cancel",
                "--state",
                "waiting",
                "--reason",
                "x",
                "--dry-run",
                "--yes",
            ],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} must be refused");
        }
        // A credential is never a flag.
        assert!(parse(&["list", "--key", "secret"]).is_err());
        assert!(
            parse(&["--json", "show", id.as_str()])
                .unwrap()
                .connection
                .json
        );
        assert!(
            parse(&["show", id.as_str(), "--json"])
                .unwrap()
                .connection
                .json
        );
    }

    #[tokio::test]
    async fn a_bulk_action_without_a_filter_stops_before_the_network() {
        // The port is closed: reaching the network would be a connect error, not usage.
        let args = parse(&[
            "--url",
            "http://127.0.0.1:9",
            "bulk",
            "cancel",
            "--reason",
            "x",
            "--yes",
        ])
        .unwrap();
        let error = execute(args).await.unwrap_err();
        assert_eq!(error.exit_code(), exit::USAGE, "{error}");
    }
}
