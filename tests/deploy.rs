//! The deployment files in `deploy/` checked against what they deploy:
//!
//! - every YAML file parses (every document of it), and every Kubernetes object names its
//!   `apiVersion` and `kind`;
//! - every `closeout …` command line they run (Dockerfile `ENTRYPOINT`/`CMD`, compose
//!   `entrypoint`/`command`, Kubernetes `command`/`args`, systemd `Exec…=`) uses
//!   subcommands and flags the real binary has, as its `--help` shows them;
//! - every `CLOSEOUT_…` variable they mention is a key of docs/configuration.md;
//! - every process they start loads its configuration with the real loader, given the
//!   configuration file and the environment that process gets;
//! - the alert rules use only metrics the code registers, and docs/metrics.md describes
//!   every metric and every alert.
//!
//! The `closeout` binary must be built: `cargo test --workspace` builds it, otherwise run
//! `cargo build -p closeout` before `cargo test --test deploy`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One file under `deploy/`.
struct File {
    /// Path from the repository root, as failures name it.
    rel: String,
    path: PathBuf,
    text: String,
}

/// Every file under `deploy/` except the compose secrets directory: what
/// `deploy/compose/init-secrets.sh` writes there is secret and no test reads it.
fn deploy_files() -> Vec<File> {
    let secrets = root().join("deploy/compose/secrets");
    let mut files = Vec::new();
    let mut dirs = vec![root().join("deploy")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path == secrets {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let rel = path
                .strip_prefix(root())
                .expect("under the root")
                .display()
                .to_string();
            files.push(File { rel, path, text });
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    assert!(
        files.iter().any(|f| f.rel == "deploy/Dockerfile"),
        "deploy/Dockerfile is missing"
    );
    files
}

fn is_yaml(file: &File) -> bool {
    file.rel.ends_with(".yaml") || file.rel.ends_with(".yml")
}

fn file<'a>(files: &'a [File], rel: &str) -> &'a File {
    files
        .iter()
        .find(|f| f.rel == rel)
        .unwrap_or_else(|| panic!("{rel} is missing"))
}

/// Panics with every failure at once, so one run shows all that is wrong.
fn report(what: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        fail(what, failures);
    }
}

fn fail(what: &str, failures: Vec<String>) -> ! {
    panic!("{what}:\n  - {}", failures.join("\n  - "))
}

// ---------------------------------------------------------------------------------------
// YAML

/// All documents of a YAML file, with `<<` merge keys applied the way Compose applies
/// them (the parser resolves aliases but leaves merge keys to the application).
fn load_yaml(file: &File) -> Result<Vec<Yaml>, String> {
    let docs = YamlLoader::load_from_str(&file.text)
        .map_err(|e| format!("{}: not valid YAML: {e}", file.rel))?;
    Ok(docs.into_iter().map(merge_keys).collect())
}

fn merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(merge_keys).collect()),
        Yaml::Hash(hash) => {
            let merge = Yaml::String("<<".into());
            let mut out = yaml_rust2::yaml::Hash::new();
            let sources = match hash.get(&merge) {
                Some(Yaml::Array(list)) => list.clone(),
                Some(one) => vec![one.clone()],
                None => Vec::new(),
            };
            // Earlier sources win over later ones, explicit keys over all of them.
            for source in sources.into_iter().rev() {
                if let Yaml::Hash(source) = merge_keys(source) {
                    for (k, v) in source {
                        out.insert(k, v);
                    }
                }
            }
            for (k, v) in hash {
                if k != merge {
                    out.insert(k, merge_keys(v));
                }
            }
            Yaml::Hash(out)
        }
        other => other,
    }
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

fn present(node: &Yaml) -> bool {
    !node.is_badvalue() && !matches!(node, Yaml::Null)
}

fn entries(node: &Yaml) -> Vec<(String, &Yaml)> {
    node.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| scalar(k).map(|k| (k, v)))
                .collect()
        })
        .unwrap_or_default()
}

/// A command as a list of words: a YAML sequence, or a string split on whitespace (the
/// compose string form).
fn words(node: &Yaml, rel: &str, what: &str) -> Result<Vec<String>, String> {
    match node {
        Yaml::Array(items) => items
            .iter()
            .map(|i| scalar(i).ok_or_else(|| format!("{rel}: {what}: a non-scalar word")))
            .collect(),
        Yaml::String(s) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        _ => Err(format!("{rel}: {what}: not a list of words")),
    }
}

// ---------------------------------------------------------------------------------------
// The processes the deploy files start

/// What the final stage of deploy/Dockerfile gives every container of the image.
#[derive(Clone, Default)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
}

/// The lines of a Dockerfile or a systemd unit with `\` continuations joined, and blank
/// lines and comments (lines starting with one of `comments`) dropped.
fn logical_lines(text: &str, comments: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with(comments)) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        out.push(std::mem::take(&mut logical));
    }
    out
}

fn dockerfile(file: &File) -> Result<Image, String> {
    let mut image = Image::default();
    for instruction in logical_lines(&file.text, &['#']) {
        let (keyword, rest) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction.as_str(), ""));
        let rest = rest.trim();
        match keyword.to_ascii_uppercase().as_str() {
            // Each stage starts afresh; the last one is the image.
            "FROM" => image = Image::default(),
            "ENTRYPOINT" | "CMD" => {
                // The shell form would make /bin/sh PID 1, and SIGTERM would never reach
                // closeout's graceful shutdown.
                let argv: Vec<String> = serde_json::from_str(rest).map_err(|_| {
                    format!(
                        "{}: `{keyword} {rest}` is not in exec form ([\"…\"])",
                        file.rel
                    )
                })?;
                if keyword.eq_ignore_ascii_case("ENTRYPOINT") {
                    image.entrypoint = argv;
                } else {
                    image.cmd = argv;
                }
            }
            "ENV" => {
                for assignment in rest.split_whitespace() {
                    let (k, v) = assignment.split_once('=').ok_or_else(|| {
                        format!("{}: `ENV {rest}`: write ENV NAME=value", file.rel)
                    })?;
                    image
                        .env
                        .push((k.to_owned(), v.trim_matches('"').to_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(image)
}

/// One `closeout` process a deploy file starts.
struct Process {
    /// The deploy file, from the repository root.
    file: String,
    /// Which process in it, in the file's own terms.
    what: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// The configuration file `CLOSEOUT_CONFIG` names, as this deployment provides it.
    config: Option<ConfigSource>,
}

#[derive(Clone)]
enum ConfigSource {
    File(PathBuf),
    /// A file's content from a Kubernetes ConfigMap, and which entry it is.
    Inline {
        text: String,
        origin: String,
    },
}

fn is_closeout_image(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    name.split([':', '@']).next() == Some("closeout")
}

fn is_closeout_program(program: &str) -> bool {
    Path::new(program).file_name().and_then(|n| n.to_str()) == Some("closeout")
}

fn compose_processes(file: &File, docs: &[Yaml], image: &Image) -> Result<Vec<Process>, String> {
    let mut out = Vec::new();
    for doc in docs {
        for (name, service) in entries(&doc["services"]) {
            let Some(service_image) = service["image"].as_str() else {
                continue;
            };
            if !is_closeout_image(service_image) {
                continue;
            }
            let what = format!("service `{name}`");
            let overrides_entrypoint = present(&service["entrypoint"]);
            let entrypoint = if overrides_entrypoint {
                words(&service["entrypoint"], &file.rel, &what)?
            } else {
                image.entrypoint.clone()
            };
            // Compose, like Docker, drops the image's CMD when the entrypoint is replaced.
            let command = if present(&service["command"]) {
                words(&service["command"], &file.rel, &what)?
            } else if overrides_entrypoint {
                Vec::new()
            } else {
                image.cmd.clone()
            };
            let mut env = image.env.clone();
            match &service["environment"] {
                Yaml::Array(list) => {
                    for item in list {
                        let item = scalar(item).unwrap_or_default();
                        let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                        env.push((k.to_owned(), v.to_owned()));
                    }
                }
                other => {
                    for (k, v) in entries(other) {
                        env.push((k, scalar(v).unwrap_or_default()));
                    }
                }
            }
            let config = match env.iter().find(|(k, _)| k == "CLOSEOUT_CONFIG") {
                Some((_, target)) => Some(compose_config(file, doc, service, target, &what)?),
                None => None,
            };
            out.push(Process {
                file: file.rel.clone(),
                what,
                argv: [entrypoint, command].concat(),
                env,
                config,
            });
        }
    }
    Ok(out)
}

/// The file a compose service's `configs` entry mounts at `target`.
fn compose_config(
    file: &File,
    doc: &Yaml,
    service: &Yaml,
    target: &str,
    what: &str,
) -> Result<ConfigSource, String> {
    let configs = service["configs"].as_vec().cloned().unwrap_or_default();
    let source = configs
        .iter()
        .find(|c| c["target"].as_str() == Some(target))
        .and_then(|c| c["source"].as_str())
        .ok_or_else(|| {
            format!(
                "{}: {what}: CLOSEOUT_CONFIG is {target}, but no `configs` entry mounts a file there",
                file.rel
            )
        })?;
    let path = doc["configs"][source]["file"].as_str().ok_or_else(|| {
        format!(
            "{}: {what}: config `{source}` has no `file` in the top-level `configs`",
            file.rel
        )
    })?;
    Ok(ConfigSource::File(
        file.path.parent().expect("a parent").join(path),
    ))
}

/// The ConfigMaps of all Kubernetes files, by name, for `envFrom` and volumes.
fn configmaps(k8s: &[(&File, Vec<Yaml>)]) -> HashMap<String, Yaml> {
    let mut out = HashMap::new();
    for (_, docs) in k8s {
        for doc in docs {
            if doc["kind"].as_str() == Some("ConfigMap") {
                if let Some(name) = doc["metadata"]["name"].as_str() {
                    out.insert(name.to_owned(), doc["data"].clone());
                }
            }
        }
    }
    out
}

fn k8s_processes(
    file: &File,
    docs: &[Yaml],
    image: &Image,
    configmaps: &HashMap<String, Yaml>,
) -> Result<Vec<Process>, String> {
    let mut out = Vec::new();
    for doc in docs {
        let object = format!(
            "{} `{}`",
            doc["kind"].as_str().unwrap_or("object"),
            doc["metadata"]["name"].as_str().unwrap_or("?")
        );
        let mut pods = Vec::new();
        pod_specs(doc, &mut pods);
        for pod in pods {
            for section in ["initContainers", "containers"] {
                for container in pod[section].as_vec().into_iter().flatten() {
                    let Some(container_image) = container["image"].as_str() else {
                        continue;
                    };
                    if !is_closeout_image(container_image) {
                        continue;
                    }
                    let what = format!(
                        "{object}, container `{}`",
                        container["name"].as_str().unwrap_or("?")
                    );
                    out.push(k8s_process(file, &what, pod, container, image, configmaps)?);
                }
            }
        }
    }
    Ok(out)
}

/// Every pod template in an object (Deployment, Job, CronJob, Pod…): a mapping with a
/// `containers` list.
fn pod_specs<'a>(node: &'a Yaml, out: &mut Vec<&'a Yaml>) {
    match node {
        Yaml::Hash(hash) => {
            if matches!(node["containers"], Yaml::Array(_)) {
                out.push(node);
            }
            for value in hash.values() {
                pod_specs(value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|i| pod_specs(i, out)),
        _ => {}
    }
}

fn k8s_process(
    file: &File,
    what: &str,
    pod: &Yaml,
    container: &Yaml,
    image: &Image,
    configmaps: &HashMap<String, Yaml>,
) -> Result<Process, String> {
    let args = if present(&container["args"]) {
        Some(words(&container["args"], &file.rel, what)?)
    } else {
        None
    };
    // A container `command` replaces the image's ENTRYPOINT and, with it, its CMD.
    let argv = if present(&container["command"]) {
        [
            words(&container["command"], &file.rel, what)?,
            args.unwrap_or_default(),
        ]
        .concat()
    } else {
        [
            image.entrypoint.clone(),
            args.unwrap_or_else(|| image.cmd.clone()),
        ]
        .concat()
    };
    let mut env = image.env.clone();
    for source in container["envFrom"].as_vec().into_iter().flatten() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            let data = configmaps.get(name).ok_or_else(|| {
                format!("{}: {what}: envFrom names ConfigMap `{name}`, which no file under deploy/k8s defines", file.rel)
            })?;
            for (k, v) in entries(data) {
                env.push((k, scalar(v).unwrap_or_default()));
            }
        }
    }
    for var in container["env"].as_vec().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        env.push((name, scalar(&var["value"]).unwrap_or_default()));
    }
    let config = match env.iter().find(|(k, _)| k == "CLOSEOUT_CONFIG") {
        Some((_, path)) => Some(k8s_config(file, what, pod, container, path, configmaps)?),
        None => None,
    };
    Ok(Process {
        file: file.rel.clone(),
        what: what.to_owned(),
        argv,
        env,
        config,
    })
}

/// The ConfigMap entry a container sees at `path`, through its volume mounts.
fn k8s_config(
    file: &File,
    what: &str,
    pod: &Yaml,
    container: &Yaml,
    path: &str,
    configmaps: &HashMap<String, Yaml>,
) -> Result<ConfigSource, String> {
    let missing = || {
        format!(
            "{}: {what}: CLOSEOUT_CONFIG is {path}, but no mounted ConfigMap entry is there",
            file.rel
        )
    };
    for mount in container["volumeMounts"].as_vec().into_iter().flatten() {
        let (Some(mount_path), Some(volume)) =
            (mount["mountPath"].as_str(), mount["name"].as_str())
        else {
            continue;
        };
        let Some(key) = path
            .strip_prefix(mount_path.trim_end_matches('/'))
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            continue;
        };
        let volume = pod["volumes"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|v| v["name"].as_str() == Some(volume))
            .ok_or_else(missing)?;
        let map = volume["configMap"]["name"].as_str().ok_or_else(missing)?;
        let text = configmaps
            .get(map)
            .and_then(|data| data[key].as_str())
            .ok_or_else(missing)?;
        return Ok(ConfigSource::Inline {
            text: text.to_owned(),
            origin: format!("ConfigMap `{map}` entry `{key}`"),
        });
    }
    Err(missing())
}

/// A systemd unit's lines as (key, value), continuation lines joined, comments dropped.
fn unit_entries(text: &str) -> Vec<(String, String)> {
    logical_lines(text, &['#', ';'])
        .into_iter()
        .filter_map(|entry| {
            let (k, v) = entry.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// `Environment=` assignments: space-separated, each optionally in double quotes.
fn systemd_assignments(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars().chain(std::iter::once(' ')) {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some((k, v)) = current.split_once('=') {
                    out.push((k.to_owned(), v.to_owned()));
                }
                current.clear();
            }
            c => current.push(c),
        }
    }
    out
}

/// A file the units name under /etc/closeout/ ships beside them in deploy/systemd/, as
/// the install layout in closeout.service says.
fn systemd_installed(file: &File, path: &str) -> Result<PathBuf, String> {
    let name = path
        .strip_prefix("/etc/closeout/")
        .ok_or_else(|| format!("{}: {path} is not under /etc/closeout/", file.rel))?;
    let local = file.path.parent().expect("a parent").join(name);
    if local.is_file() {
        Ok(local)
    } else {
        Err(format!(
            "{}: names {path}, but deploy/systemd/{name} does not exist",
            file.rel
        ))
    }
}

fn systemd_processes(file: &File) -> Result<Vec<Process>, String> {
    let unit = unit_entries(&file.text);
    let mut env = Vec::new();
    for (key, value) in &unit {
        match key.as_str() {
            "EnvironmentFile" => {
                let path = systemd_installed(file, value.trim_start_matches('-'))?;
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                for (k, v) in unit_entries(&text) {
                    env.push((k, v.trim_matches('"').to_owned()));
                }
            }
            "Environment" => env.extend(systemd_assignments(value)),
            _ => {}
        }
    }
    let config = match env.iter().find(|(k, _)| k == "CLOSEOUT_CONFIG") {
        Some((_, path)) => Some(ConfigSource::File(systemd_installed(file, path)?)),
        None => None,
    };
    let mut out = Vec::new();
    for (key, value) in &unit {
        if !key.starts_with("Exec") {
            continue;
        }
        // Exec prefixes (-, @, :, +, !, |) change how systemd runs the command, not what
        // it runs.
        let line = value.trim_start_matches(['-', '@', ':', '+', '!', '|']);
        let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        out.push(Process {
            file: file.rel.clone(),
            what: format!("{key}="),
            argv,
            env: env.clone(),
            config: config.clone(),
        });
    }
    Ok(out)
}

/// Every process every deploy file starts, `closeout` or not.
fn processes(files: &[File]) -> Vec<Process> {
    let image = dockerfile(file(files, "deploy/Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![Process {
        file: "deploy/Dockerfile".into(),
        what: "ENTRYPOINT and CMD".into(),
        argv: [image.entrypoint.clone(), image.cmd.clone()].concat(),
        env: image.env.clone(),
        config: None,
    }];
    let yaml: Vec<(&File, Vec<Yaml>)> = files
        .iter()
        .filter(|f| is_yaml(f))
        .map(|f| (f, load_yaml(f).unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    let k8s: Vec<(&File, Vec<Yaml>)> = yaml
        .iter()
        .filter(|(f, _)| f.rel.starts_with("deploy/k8s/"))
        .map(|(f, d)| (*f, d.clone()))
        .collect();
    let maps = configmaps(&k8s);
    let mut failures = Vec::new();
    for (f, docs) in &yaml {
        let found = if docs.iter().any(|d| present(&d["services"])) {
            compose_processes(f, docs, &image)
        } else if f.rel.starts_with("deploy/k8s/") {
            k8s_processes(f, docs, &image, &maps)
        } else {
            Ok(Vec::new())
        };
        match found {
            Ok(found) => out.extend(found),
            Err(e) => failures.push(e),
        }
    }
    for f in files.iter().filter(|f| f.rel.ends_with(".service")) {
        match systemd_processes(f) {
            Ok(found) => out.extend(found),
            Err(e) => failures.push(e),
        }
    }
    report("the deploy files cannot be read as deployments", failures);
    out
}

fn closeout_processes(files: &[File]) -> Vec<Process> {
    processes(files)
        .into_iter()
        .filter(|p| p.argv.first().is_some_and(|a| is_closeout_program(a)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The real CLI, as its --help shows it

#[derive(Clone)]
struct Help {
    subcommands: Vec<String>,
    /// `--name` or `-x`, and whether it takes a value.
    options: Vec<(String, bool)>,
    positionals: bool,
}

fn parse_help(text: &str) -> Help {
    let mut help = Help {
        subcommands: Vec::new(),
        options: Vec::new(),
        positionals: false,
    };
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let trimmed = line.trim_start();
        // Names sit at a small indent; deeper lines continue a description.
        let indent = line.len() - trimmed.len();
        match section {
            "Commands:" if indent == 2 => {
                if let Some(name) = trimmed.split_whitespace().next() {
                    help.subcommands.push(name.to_owned());
                }
            }
            "Arguments:" if !trimmed.is_empty() => help.positionals = true,
            "Options:" if indent <= 6 && trimmed.starts_with('-') => {
                // `-c, --config <CONFIG>  Description`: the spec ends at the first gap.
                let spec = trimmed.split("  ").next().unwrap_or(trimmed);
                let takes_value = spec.contains('<');
                for word in spec.split([',', ' ']) {
                    if word.starts_with('-') {
                        help.options.push((word.to_owned(), takes_value));
                    }
                }
            }
            _ => {}
        }
    }
    help
}

struct Cli {
    bin: PathBuf,
    helps: HashMap<Vec<String>, Result<Help, String>>,
}

impl Cli {
    fn new() -> Self {
        Self {
            bin: closeout_it::closeout_bin(),
            helps: HashMap::new(),
        }
    }

    fn help(&mut self, path: &[String]) -> Result<Help, String> {
        let bin = self.bin.clone();
        self.helps
            .entry(path.to_vec())
            .or_insert_with(|| {
                let shown = shown(path);
                let output = Command::new(&bin)
                    .args(path)
                    .arg("--help")
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
                if !output.status.success() {
                    return Err(format!(
                        "`{shown} --help` fails ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
                Ok(parse_help(&String::from_utf8_lossy(&output.stdout)))
            })
            .clone()
    }

    /// Whether `argv` (program first) is a command line the binary accepts: each word a
    /// subcommand of the one before, an option of the subcommand reached so far (with its
    /// value), or an argument where the subcommand takes one; and it ends on a command
    /// that runs, not on a group of subcommands.
    fn check(&mut self, argv: &[String]) -> Result<(), String> {
        let mut path: Vec<String> = Vec::new();
        let mut words = argv.iter().skip(1);
        while let Some(word) = words.next() {
            let help = self.help(&path)?;
            if word.starts_with('-') && word.len() > 1 {
                let name = word.split('=').next().unwrap_or(word);
                let takes_value = help
                    .options
                    .iter()
                    .find(|(option, _)| option == name)
                    .map(|(_, takes)| *takes)
                    .ok_or_else(|| {
                        format!(
                            "`{name}` is not an option of `{}` (see its --help)",
                            shown(&path)
                        )
                    })?;
                if takes_value && !word.contains('=') && words.next().is_none() {
                    return Err(format!("`{name}` needs a value"));
                }
            } else if !help.subcommands.is_empty() {
                if !help.subcommands.contains(word) {
                    return Err(format!(
                        "`{word}` is not a subcommand of `{}`; it has {}",
                        shown(&path),
                        help.subcommands.join(", ")
                    ));
                }
                path.push(word.clone());
            } else if !help.positionals {
                return Err(format!("`{}` takes no argument `{word}`", shown(&path)));
            }
        }
        let help = self.help(&path)?;
        if !help.subcommands.is_empty() {
            return Err(format!(
                "`{}` needs a subcommand: {}",
                shown(&path),
                help.subcommands.join(", ")
            ));
        }
        Ok(())
    }
}

fn shown(path: &[String]) -> String {
    std::iter::once("closeout")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// The documented configuration keys

/// The environment variables docs/configuration.md documents.
struct Documented {
    /// The table's variables split on `__`; `<…>` segments are placeholders.
    patterns: Vec<Vec<String>>,
}

/// Read by closeout but not configuration keys; the docs name both.
const NOT_KEYS: &[&str] = &["CLOSEOUT_CONFIG", "CLOSEOUT_LOG"];

impl Documented {
    fn load() -> Self {
        let path = root().join("docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
        for name in NOT_KEYS {
            assert!(
                text.contains(&format!("`{name}")),
                "docs/configuration.md no longer mentions {name}"
            );
        }
        let mut patterns = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("| `")) {
            // | key | environment variable | default | meaning |
            let Some(column) = line.split('|').nth(2) else {
                continue;
            };
            for (i, quoted) in column.split('`').enumerate() {
                if i % 2 == 1 && quoted.starts_with("CLOSEOUT_") {
                    patterns.push(quoted.split("__").map(str::to_owned).collect());
                }
            }
        }
        assert!(
            patterns.len() > 20,
            "found only {} variables in docs/configuration.md's table; has its layout changed?",
            patterns.len()
        );
        Self { patterns }
    }

    fn documents(&self, name: &str) -> bool {
        if NOT_KEYS.contains(&name) {
            return true;
        }
        // Every variable of the table has a `_FILE` twin.
        let keys = [Some(name), name.strip_suffix("_FILE")];
        keys.into_iter()
            .flatten()
            .any(|key| self.patterns.iter().any(|p| matches_pattern(p, key)))
    }
}

fn matches_pattern(pattern: &[String], name: &str) -> bool {
    let segments: Vec<&str> = name.split("__").collect();
    segments.len() == pattern.len()
        && pattern.iter().zip(&segments).all(|(p, s)| {
            if p == "<VERSION>" {
                // Key versions are whole numbers (cooldown.hash_keys.1).
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
            } else if p.starts_with('<') && p.ends_with('>') {
                !s.is_empty()
            } else {
                p == s
            }
        })
}

/// Every `CLOSEOUT_…` name in `text`, with its line number. A name cut short by an
/// ellipsis or a placeholder (`CLOSEOUT_…_FILE`, `CLOSEOUT_<SECTION>__<KEY>`) ends in `_`
/// and is prose, not a variable.
fn variables(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("CLOSEOUT_") {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..len];
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.ends_with('_')
            {
                out.push((n + 1, name.to_owned()));
            }
            rest = &tail[len.max(1)..];
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Metrics

/// The metric names the code registers: string literals of the form `closeout_[a-z0-9_]*`
/// passed first to a constructor (`Opts::new(`, `Gauge::new(`) or a `register_…!(` macro.
fn registered_metrics() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("crates/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name() != Some("target".as_ref()) {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension() != Some("rs".as_ref()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            let mut from = 0;
            while let Some(at) = text[from..].find("\"closeout_") {
                let start = from + at + 1;
                let end = start + text[start..].find('"').expect("closing quote");
                let name = &text[start..end];
                let before = text[..start - 1].trim_end();
                let macro_name = before.strip_suffix("!(").and_then(|b| {
                    b.rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                });
                let constructor = before.ends_with("new(")
                    || macro_name.is_some_and(|m| m.starts_with("register_"));
                let is_name = name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if constructor && is_name {
                    out.insert(name.to_owned());
                }
                from = end + 1;
            }
        }
    }
    out
}

/// Metric names in a PromQL expression. Label values (inside quotes) are skipped.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut quoted = false;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
        } else {
            if word.starts_with("closeout_") {
                out.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    out
}

struct Rule {
    alert: String,
    expr: String,
}

fn alert_rules(files: &[File]) -> Result<Vec<Rule>, Vec<String>> {
    let f = file(files, "deploy/prometheus/alerts.yml");
    let docs = load_yaml(f).map_err(|e| vec![e])?;
    let mut rules = Vec::new();
    let mut failures = Vec::new();
    for doc in &docs {
        for group in doc["groups"].as_vec().into_iter().flatten() {
            for rule in group["rules"].as_vec().into_iter().flatten() {
                let (Some(alert), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str())
                else {
                    failures.push(format!("{}: a rule without `alert` or `expr`", f.rel));
                    continue;
                };
                if !matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("warning" | "critical")
                ) {
                    failures.push(format!(
                        "{}: {alert}: severity must be warning or critical",
                        f.rel
                    ));
                }
                if rule["annotations"]["summary"]
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    failures.push(format!("{}: {alert}: no summary annotation", f.rel));
                }
                rules.push(Rule {
                    alert: alert.to_owned(),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    if rules.is_empty() {
        failures.push(format!("{}: no alerting rules found", f.rel));
    }
    if failures.is_empty() {
        Ok(rules)
    } else {
        Err(failures)
    }
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn every_yaml_file_parses_and_every_kubernetes_object_is_typed() {
    let files = deploy_files();
    let mut failures = Vec::new();
    let mut parsed = 0;
    for f in files.iter().filter(|f| is_yaml(f)) {
        let docs = match load_yaml(f) {
            Ok(docs) => docs,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        parsed += 1;
        if !f.rel.starts_with("deploy/k8s/") {
            continue;
        }
        for (i, doc) in docs.iter().enumerate() {
            if matches!(doc, Yaml::Null) {
                continue;
            }
            for field in ["apiVersion", "kind"] {
                if doc[field].as_str().is_none_or(str::is_empty) {
                    failures.push(format!("{} document {}: no `{field}`", f.rel, i + 1));
                }
            }
            if doc["kind"].as_str() != Some("Kustomization")
                && doc["metadata"]["name"].as_str().is_none()
            {
                failures.push(format!("{} document {}: no metadata.name", f.rel, i + 1));
            }
        }
    }
    assert!(
        parsed >= 5,
        "only {parsed} YAML files under deploy/; expected compose, k8s and alerts"
    );
    report("deploy YAML", failures);
}

#[test]
fn every_kubernetes_file_is_in_the_kustomization() {
    let files = deploy_files();
    let kustomization =
        load_yaml(file(&files, "deploy/k8s/kustomization.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let listed: BTreeSet<String> = kustomization[0]["resources"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    let mut failures = Vec::new();
    for name in &listed {
        if !root().join("deploy/k8s").join(name).is_file() {
            failures.push(format!(
                "deploy/k8s/kustomization.yaml lists {name}, which does not exist"
            ));
        }
    }
    // secret.yaml is a template with placeholders; applying it with the rest would
    // overwrite the real Secret.
    for f in files
        .iter()
        .filter(|f| f.rel.starts_with("deploy/k8s/") && is_yaml(f))
    {
        let name = f.rel.trim_start_matches("deploy/k8s/");
        let expected = name != "secret.yaml" && name != "kustomization.yaml";
        if expected != listed.contains(name) {
            failures.push(format!(
                "deploy/k8s/kustomization.yaml {} {name}",
                if expected { "misses" } else { "must not list" }
            ));
        }
    }
    report("the kustomization", failures);
}

#[test]
fn every_closeout_command_line_exists_in_the_cli() {
    let files = deploy_files();
    let processes = closeout_processes(&files);
    let mut cli = Cli::new();
    let mut failures = Vec::new();
    for p in &processes {
        if let Err(e) = cli.check(&p.argv) {
            failures.push(format!(
                "{} ({}): `{}`: {e}",
                p.file,
                p.what,
                p.argv.join(" ")
            ));
        }
    }
    // Each way of deploying starts the commands it documents; a file that silently stops
    // yielding command lines (a renamed key, a changed image name) must not pass.
    let ran: BTreeSet<String> = processes
        .iter()
        .map(|p| format!("{} :: {}", p.file, p.argv[1..].join(" ")))
        .collect();
    for expected in [
        "deploy/Dockerfile :: serve",
        "deploy/compose.yaml :: migrate",
        "deploy/compose.yaml :: serve",
        "deploy/compose.yaml :: sandbox --listen 0.0.0.0:8700",
        "deploy/k8s/deployment.yaml :: migrate",
        "deploy/k8s/deployment.yaml :: serve",
        "deploy/k8s/cronjobs.yaml :: cooldown expire",
        "deploy/k8s/cronjobs.yaml :: purge",
        "deploy/systemd/closeout.service :: serve",
        "deploy/systemd/closeout-cooldown-expire.service :: cooldown expire",
        "deploy/systemd/closeout-purge.service :: purge",
    ] {
        if !ran.contains(expected) {
            failures.push(format!(
                "expected the command line {expected}; found:\n      {}",
                ran.iter().cloned().collect::<Vec<_>>().join("\n      ")
            ));
        }
    }
    report("command lines the binary does not accept", failures);
}

#[test]
fn the_cli_check_refuses_what_the_binary_refuses() {
    let mut cli = Cli::new();
    for (line, why) in [
        (
            &["closeout", "cooldown", "expir"][..],
            "`expir` is not a subcommand",
        ),
        (
            &["closeout", "serve", "--lease-tll", "1s"],
            "`--lease-tll` is not an option",
        ),
        (
            &["closeout", "purge", "--api-listen", "0.0.0.0:1"],
            "`--api-listen` is not an option of `closeout purge`",
        ),
        (&["closeout", "cooldown"], "needs a subcommand"),
        (&["closeout", "serve", "--lease-ttl"], "needs a value"),
        (&["closeout", "migrate", "now"], "takes no argument"),
    ] {
        let err = cli
            .check(&argv(line))
            .expect_err(&format!("`{}` must be refused", line.join(" ")));
        assert!(err.contains(why), "`{}`: {err}", line.join(" "));
    }
    for line in [
        &[
            "closeout",
            "serve",
            "--lease-ttl",
            "30s",
            "--api-listen=0.0.0.0:8080",
        ][..],
        &[
            "closeout",
            "--config",
            "/etc/closeout/closeout.toml",
            "cooldown",
            "expire",
        ],
        &[
            "closeout",
            "cooldown",
            "import",
            "closures.csv",
            "--dry-run",
        ],
        &["closeout", "serve", "--database-url", "sqlite://x.db"],
    ] {
        cli.check(&argv(line))
            .unwrap_or_else(|e| panic!("`{}`: {e}", line.join(" ")));
    }
}

#[test]
fn every_closeout_variable_is_a_documented_key() {
    let documented = Documented::load();
    let mut failures = Vec::new();
    let mut seen = 0;
    for f in deploy_files() {
        for (line, name) in variables(&f.text) {
            seen += 1;
            if !documented.documents(&name) {
                failures.push(format!(
                    "{}:{line}: {name} is not a variable docs/configuration.md documents",
                    f.rel
                ));
            }
        }
    }
    assert!(
        seen > 20,
        "only {seen} CLOSEOUT_ variables found under deploy/"
    );
    report("undocumented CLOSEOUT_ variables", failures);
}

#[test]
fn the_variable_check_refuses_misspelt_keys() {
    let documented = Documented::load();
    for name in [
        "CLOSEOUT_DATABASE_URL",
        "CLOSEOUT_DATABASE_URL_FILE",
        "CLOSEOUT_LEASE_TTL",
        "CLOSEOUT_API__CHANNELS__VIETJET__KEY_HASHES_FILE",
        "CLOSEOUT_COOLDOWN__HASH_KEYS__1_FILE",
        "CLOSEOUT_CONNECTORS__SKYJOY__HTTP__TIMEOUT_MS",
        "CLOSEOUT_CONFIG",
        "CLOSEOUT_LOG",
    ] {
        assert!(documented.documents(name), "{name} is documented");
    }
    for name in [
        "CLOSEOUT_DATABASE_ULR",
        "CLOSEOUT_API__CHANNELS__VIETJET__KEY_HASHE",
        "CLOSEOUT_API__CHANNELS__KEY_HASHES",
        "CLOSEOUT_COOLDOWN__HASH_KEYS__ONE",
        "CLOSEOUT_ENGINE__LEASE_TTL__X",
        "CLOSEOUT_CONFIG_FILE_X",
    ] {
        assert!(!documented.documents(name), "{name} is not documented");
    }
    assert_eq!(
        variables("A=CLOSEOUT_LOG B=$CLOSEOUT_DATABASE_URL_FILE XCLOSEOUT_NO CLOSEOUT_…_FILE"),
        vec![
            (1, "CLOSEOUT_LOG".to_owned()),
            (1, "CLOSEOUT_DATABASE_URL_FILE".to_owned())
        ]
    );
}

/// A stand-in for a secret file's content, shaped like the real one so the loader's
/// checks (hash format, key length) apply.
fn stand_in(variable: &str) -> &'static str {
    if variable.contains("KEY_HASHES") {
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    } else if variable.starts_with("CLOSEOUT_DATABASE_URL") {
        "postgres://closeout:stand-in@127.0.0.1:5432/closeout"
    } else if variable.contains("HASH_KEYS") {
        "a-stand-in-phone-hash-key-of-more-than-32-characters"
    } else {
        "stand-in-secret"
    }
}

#[test]
fn every_closeout_process_loads_its_configuration() {
    let files = deploy_files();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let mut loaded = 0;
    for (n, p) in closeout_processes(&files).iter().enumerate() {
        // A later setting of a variable replaces an earlier one (the container's over
        // the image's), as in the process's real environment.
        let mut env = std::collections::BTreeMap::new();
        for (name, value) in &p.env {
            let value = if name == "CLOSEOUT_CONFIG" {
                match &p.config {
                    Some(ConfigSource::File(path)) => path.display().to_string(),
                    Some(ConfigSource::Inline { text, .. }) => {
                        let path = dir.path().join(format!("config-{n}.toml"));
                        std::fs::write(&path, text).expect("write config");
                        path.display().to_string()
                    }
                    None => unreachable!("CLOSEOUT_CONFIG always resolves to a source"),
                }
            } else if name.starts_with("CLOSEOUT_") && name.ends_with("_FILE") {
                // The secret files exist only where the deployment runs.
                let path = dir.path().join(format!("{n}-{name}"));
                std::fs::write(&path, format!("{}\n", stand_in(name))).expect("write secret");
                path.display().to_string()
            } else {
                value.clone()
            };
            env.insert(name.clone(), value);
        }
        let config = match closeout::config::load_from(None, env, &Default::default()) {
            Ok(config) => config,
            Err(e) => {
                let origin = match &p.config {
                    Some(ConfigSource::Inline { origin, .. }) => format!(", file from {origin}"),
                    _ => String::new(),
                };
                failures.push(format!("{} ({}{origin}): {e}", p.file, p.what));
                continue;
            }
        };
        if let Err(e) = config.cooldown.keys() {
            failures.push(format!("{} ({}): {e}", p.file, p.what));
        }
        loaded += 1;
    }
    assert!(loaded >= 8, "only {loaded} closeout processes found");
    report("configurations that do not load", failures);
}

#[test]
fn alert_rules_use_only_registered_metrics() {
    let files = deploy_files();
    let registered = registered_metrics();
    assert!(
        registered.contains("closeout_http_requests_total"),
        "the metric scan found no closeout_http_requests_total; has telemetry.rs changed shape? found {registered:?}"
    );
    let rules = alert_rules(&files).unwrap_or_else(|f| fail("deploy/prometheus/alerts.yml", f));
    let mut failures = Vec::new();
    for rule in &rules {
        for name in metric_names(&rule.expr) {
            // A histogram is exposed as its _bucket, _sum and _count series.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| registered.contains(*b));
            if !registered.contains(&name) && base.is_none() {
                failures.push(format!(
                    "deploy/prometheus/alerts.yml: {} uses {name}, which no code registers (registered: {})",
                    rule.alert,
                    registered.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    report("alert rules on metrics that do not exist", failures);
}

#[test]
fn every_metric_and_alert_is_documented() {
    let files = deploy_files();
    let docs = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut failures = Vec::new();
    for name in registered_metrics() {
        if !docs.contains(&format!("`{name}`")) {
            failures.push(format!("docs/metrics.md does not describe `{name}`"));
        }
    }
    let rules = alert_rules(&files).unwrap_or_else(|f| fail("deploy/prometheus/alerts.yml", f));
    for rule in rules {
        if !docs.contains(&format!("`{}`", rule.alert)) {
            failures.push(format!("docs/metrics.md does not explain `{}`", rule.alert));
        }
    }
    report("undocumented metrics or alerts", failures);
}
