#![allow(clippy::unwrap_used)]
//! The monitoring an operator deploys (`deploy/`), against real processes:
//! - every metric the alert rules (`deploy/prometheus/alerts.yml`) and the Grafana dashboard
//!   (`deploy/grafana/*.json`) name is one a running node exports — the rules' metrics on
//!   every node from start-up, before any traffic, the dashboard's once bundles flow;
//! - `lockstep-testnet up --monitor` starts a real Prometheus that scrapes every node, loads
//!   the rules and evaluates them on the network's own series: none firing while it is
//!   healthy, `LockstepNodeDown` for a killed node, and with two of four killed
//!   `LockstepNoNewHeight` and `LockstepPeersBelowQuorum` for the two left. It evaluates every
//!   dashboard query too. It stops with the network;
//! - without the `prometheus` binary, `--monitor` fails before starting anything, naming the
//!   package.
//!
//! Metric names are taken from the PromQL expressions with a small tokenizer
//! ([`metric_names`]), checked here against expressions Prometheus itself parsed.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.
//! The Prometheus test needs the `prometheus` binary (Debian package `prometheus`;
//! `scripts/deps.sh` installs it).

use lockstep_client::bundle::{sign, to_raw_hex};
use lockstep_client::follower::Subscriber;
use lockstep_client::SeqApiClient;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{decided_height, eventually, metric, network_dir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);

/// Series Prometheus makes itself for every target, which no node exports.
const MADE_BY_PROMETHEUS: &[&str] = &["up"];

/// Identifiers in PromQL that are not metric names when no `(` follows them: aggregation
/// operators (followed by `by`/`without`), binary and set operators, modifiers, literals.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "offset",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers that are not functions (an
/// identifier followed by `(`), keywords, label names (in `{…}` matchers and the label lists
/// of `by`, `on` …), strings, numbers, durations (`[…]`) or Grafana variables (`$…`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // Index past the group that opens at `chars[j]` (`(`, `{` or `[`), strings inside skipped.
    let skip_group = |j: usize| {
        let (open, close) = match chars[j] {
            '(' => ('(', ')'),
            '{' => ('{', '}'),
            _ => ('[', ']'),
        };
        let mut depth = 0;
        let mut k = j;
        while k < chars.len() {
            match chars[k] {
                '"' | '\'' | '`' => k = skip_string(&chars, k) - 1,
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return k + 1;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        k
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' || c == '[' {
            i = skip_group(i);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            // A Grafana variable.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // A number or a duration (`1e6`, `0.99`, `5m`).
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            let opens = chars.get(after) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if opens {
                    i = skip_group(after);
                }
            } else if !opens && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Index past the string literal that opens at `chars[i]`.
fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut k = i + 1;
    while k < chars.len() {
        if chars[k] == '\\' && quote != '`' {
            k += 2;
            continue;
        }
        if chars[k] == quote {
            return k + 1;
        }
        k += 1;
    }
    k
}

/// `(alert name, expression)` of every rule in an alert rules file written as alerts.yml is:
/// `- alert: NAME`, then `expr:` with the expression on its line or as an indented block
/// (`>-`, `|` …). Fails if a rule's expression is not found, so a rule the reader cannot
/// follow is not skipped silently.
fn alert_exprs(yaml: &str) -> eyre::Result<Vec<(String, String)>> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules = Vec::new();
    let mut alert: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            if let Some(prev) = alert.take() {
                eyre::bail!("alert {prev} has no expr");
            }
            alert = Some(name.trim().to_string());
        } else if let Some(value) = trimmed.strip_prefix("expr:") {
            let name = alert
                .take()
                .ok_or_else(|| eyre::eyre!("line {}: an expr outside an alert rule", i + 1))?;
            let value = value.trim();
            let indent = line.len() - trimmed.len();
            let expr = if matches!(value, ">" | ">-" | "|" | "|-" | ">+" | "|+") {
                let mut block = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let deeper = next.len() - next.trim_start().len() > indent;
                    if !(deeper || next.trim().is_empty()) {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                block.join("\n")
            } else {
                value.trim_matches(|c| c == '"' || c == '\'').to_string()
            };
            if expr.trim().is_empty() {
                eyre::bail!("alert {name}: empty expr");
            }
            rules.push((name, expr));
        }
        i += 1;
    }
    if let Some(prev) = alert {
        eyre::bail!("alert {prev} has no expr");
    }
    Ok(rules)
}

/// Every PromQL expression of a Grafana dashboard, with where it is: each panel target's
/// `expr` (panels in rows included), and the metric of each `label_values(metric, label)`
/// query variable.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(title)
                    .to_string();
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => {
                            out.push((format!("panel {title:?}"), e.clone()))
                        }
                        ("templating", _) => {}
                        _ => walk(x, &title, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .unwrap_or_default();
        if let Some(args) = query.trim().strip_prefix("label_values(") {
            // label_values(label) names no metric; label_values(selector, label) does.
            let args = args.trim_end().trim_end_matches(')');
            if let Some((selector, _label)) = args.rsplit_once(',') {
                out.push((format!("variable {}", var["name"]), selector.to_string()));
            }
        }
    }
    out
}

/// Metric names in a Prometheus text exposition: every sample's name (`x_bucket`, `x_sum`,
/// `x_count` of a histogram or summary included) and every family named by `# TYPE`.
fn exported_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_string());
            }
        } else if !line.starts_with('#') {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Each `(where, metric)` used but not exported (nor made by Prometheus).
fn missing(used: &[(String, String)], exported: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (place, expr) in used {
        for name in metric_names(expr) {
            if !exported.contains(&name) && !MADE_BY_PROMETHEUS.contains(&name.as_str()) {
                out.push(format!("{name} (used by {place})"));
            }
        }
    }
    out
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn alert_rules() -> eyre::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yml"))?;
    Ok(alert_exprs(&text)?
        .into_iter()
        .map(|(name, e)| (format!("alerts.yml rule {name}"), e))
        .collect())
}

/// The dashboards under deploy/grafana, by file name.
fn dashboards() -> eyre::Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(deploy_dir().join("grafana"))? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "json") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            out.insert(
                name,
                serde_json::from_str(&std::fs::read_to_string(&path)?)?,
            );
        }
    }
    eyre::ensure!(!out.is_empty(), "no dashboard in deploy/grafana");
    Ok(out)
}

fn dashboard_uses() -> eyre::Result<Vec<(String, String)>> {
    let mut used = Vec::new();
    for (file, d) in dashboards()? {
        used.extend(
            dashboard_exprs(&d)
                .into_iter()
                .map(|(place, e)| (format!("{file} {place}"), e)),
        );
    }
    Ok(used)
}

fn fail_on_missing(what: &str, node: &str, gaps: Vec<String>) -> eyre::Result<()> {
    eyre::ensure!(
        gaps.is_empty(),
        "{node} does not export {} metric(s) that {what} use(s):\n  {}",
        gaps.len(),
        gaps.join("\n  ")
    );
    Ok(())
}

// ---- The extractor and the files, without a network ----

#[test]
fn metric_names_skips_functions_keywords_labels_strings_and_durations() {
    let cases: &[(&str, &[&str])] = &[
        ("up{job=\"lockstep\"} == 0", &["up"]),
        (
            "histogram_quantile(0.99, sum without (moniker) (rate(malachitebft_core_consensus_time_per_block_bucket[1m]))) > 1",
            &["malachitebft_core_consensus_time_per_block_bucket"],
        ),
        (
            "min without (swarm, moniker) (label_replace(lockstep_gossip_peers, \"swarm\", \"gossip\", \"\", \"\") or label_replace(b_total, \"swarm\", \"x\", \"\", \"\")) < on (job, instance) group_left lockstep_consensus_quorum_peers",
            &["b_total", "lockstep_consensus_quorum_peers", "lockstep_gossip_peers"],
        ),
        (
            "1 / rate(lockstep_consensus_height{job=\"lockstep\", node=~\"$node\"}[$__rate_interval])",
            &["lockstep_consensus_height"],
        ),
        (
            "sum by (reason) (rate(a_total{reason!=\"by (x) y\"}[5m] offset 1m)) and bool c:recorded",
            &["a_total", "c:recorded"],
        ),
        ("lockstep_disk_free_bytes < on (job, instance) group_left 2 * lockstep_disk_min_free_bytes", &["lockstep_disk_free_bytes", "lockstep_disk_min_free_bytes"]),
        ("count(x) > 1e3 unless y offset 5m", &["x", "y"]),
    ];
    for (expr, want) in cases {
        let got = metric_names(expr);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn reads_every_rule_of_alerts_yml_and_a_name_the_node_lacks_is_reported() {
    let rules = alert_rules().unwrap();
    let text = std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yml")).unwrap();
    assert_eq!(rules.len(), text.matches("- alert:").count());
    assert!(rules.len() >= 7, "{rules:?}");
    for (place, expr) in &rules {
        assert!(
            !metric_names(expr).is_empty(),
            "{place}: no metric in {expr}"
        );
    }
    // A block expression spans lines, and ends where the rule's next key starts.
    let two = "  - alert: A\n    expr: >-\n      a_total\n      and b\n    for: 1m\n  - alert: B\n    expr: c == 0\n";
    assert_eq!(
        alert_exprs(two).unwrap(),
        vec![
            ("A".to_string(), "a_total\nand b".to_string()),
            ("B".to_string(), "c == 0".to_string())
        ]
    );
    assert!(alert_exprs("  - alert: A\n    for: 1m\n").is_err());
    // A name the node does not export is reported, with where it is used.
    let exported = exported_names("# TYPE a_total counter\na_total 1\nb{x=\"1\"} 2\n");
    assert!(missing(&[("r".into(), "a_total + b".into())], &exported).is_empty());
    assert_eq!(
        missing(
            &[("rule R".into(), "a_total + c_seconds".into())],
            &exported
        ),
        vec!["c_seconds (used by rule R)".to_string()]
    );
    let e = fail_on_missing(
        "the rules",
        "node0",
        vec!["c_seconds (used by rule R)".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("node0") && e.contains("c_seconds"), "{e}");
}

#[test]
fn the_dashboard_is_grafana_json_with_a_query_in_every_panel() {
    for (file, d) in dashboards().unwrap() {
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{file}");
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{file}");
        assert!(d["title"].is_string(), "{file}");
        let panels = d["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().unwrap();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: id of {title} twice"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
            assert!(
                x + w <= 24 && g["h"].as_u64().unwrap() > 0,
                "{file}: {title} {g}"
            );
            match p["type"].as_str().unwrap() {
                "row" => {}
                "timeseries" | "stat" => {
                    assert_eq!(p["datasource"]["type"], "prometheus", "{file}: {title}");
                    let targets = p["targets"].as_array().unwrap();
                    assert!(!targets.is_empty(), "{file}: {title}");
                    let refs: BTreeSet<&str> = targets
                        .iter()
                        .map(|t| t["refId"].as_str().unwrap())
                        .collect();
                    assert_eq!(refs.len(), targets.len(), "{file}: {title}");
                    for t in targets {
                        let e = t["expr"].as_str().unwrap();
                        assert!(!metric_names(e).is_empty(), "{file}: {title}: {e}");
                    }
                }
                other => panic!("{file}: {title}: panel type {other} not expected"),
            }
        }
        assert!(panels.len() > 10, "{file}");
        let uses = dashboard_exprs(&d);
        assert!(
            uses.iter().any(|(place, _)| place.starts_with("variable")),
            "{file}"
        );
    }
}

// ---- A running network ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported_by_a_running_node(
) -> eyre::Result<()> {
    let mut cluster = Cluster::create(
        &network_dir("monitoring-metrics"),
        &ClusterOptions::default(),
    )?;
    cluster.start_all()?;
    cluster.wait_ready(READY).await?;
    let rules = alert_rules()?;

    // The rules' metrics: on every node, before any traffic (an alert on a series that
    // appears only with the event would miss it).
    for n in &cluster.nodes {
        let body = lockstep_testnet::scrape_metrics(&n.metrics_url()).await?;
        fail_on_missing(
            "the alert rules",
            &n.name,
            missing(&rules, &exported_names(&body)),
        )?;
        // The start-up figures the rules compare with.
        assert_eq!(
            lockstep_testnet::metric_sum(&body, "lockstep_consensus_validators"),
            4.0
        );
        assert_eq!(
            lockstep_testnet::metric_sum(&body, "lockstep_consensus_quorum_peers"),
            2.0
        );
        let d = lockstep_node::config::Config::new("x");
        assert_eq!(
            lockstep_testnet::metric_sum(&body, "lockstep_mempool_max_bundles"),
            d.mempool.max_count as f64
        );
        assert_eq!(
            lockstep_testnet::metric_sum(&body, "lockstep_disk_min_free_bytes"),
            (d.storage.min_free_mb * 1024 * 1024) as f64
        );
        assert_eq!(
            lockstep_testnet::metric_series(&body, "lockstep_consensus_equivocations_total").len(),
            4,
            "one series per kind, at 0"
        );
        assert!(lockstep_testnet::metric_sum(&body, "lockstep_process_resident_bytes") > 1e6);
    }

    // Traffic: a rollup subscriber on node0, bundles sent to every node, one refused.
    let node0 = cluster.nodes[0].metrics_url();
    let from = decided_height(&cluster, 0).await? + 1;
    let sub = Subscriber::connect(
        &cluster.nodes[0].ws_url(),
        1,
        Some(from),
        cluster.verifier()?,
    )
    .await?;
    eventually("node0 to count its subscriber", READY, || async {
        (metric(&node0, "lockstep_rpc_subscribers").await.ok()? == 1.0).then_some(())
    })
    .await?;
    let k = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let sent = 20u64;
    for n in 0..sent {
        let b = sign(
            &k,
            cluster.chain_id,
            n,
            from + 1000,
            vec![(1, n.to_le_bytes().to_vec())],
        );
        cluster
            .http((n % 4) as usize)?
            .send_raw_bundle(to_raw_hex(&b))
            .await?;
    }
    let mut bad = sign(&k, cluster.chain_id, sent, from + 1000, vec![(1, vec![1])]);
    bad.signature[10] ^= 0xff;
    assert!(cluster
        .http(0)?
        .send_raw_bundle(to_raw_hex(&bad))
        .await
        .is_err());
    eventually("node0 to commit the bundles", READY, || async {
        (metric(&node0, "lockstep_consensus_bundles_committed_total")
            .await
            .ok()?
            >= sent as f64)
            .then_some(())
    })
    .await?;

    // The dashboard's metrics: on node0, which took submissions, refused one, gossiped and
    // committed.
    let body = lockstep_testnet::scrape_metrics(&node0).await?;
    fail_on_missing(
        "the dashboard",
        "node0",
        missing(&dashboard_uses()?, &exported_names(&body)),
    )?;

    drop(sub);
    eventually("node0 to count the subscriber gone", READY, || async {
        (metric(&node0, "lockstep_rpc_subscribers").await.ok()? == 0.0).then_some(())
    })
    .await?;
    cluster.stop_all()?;
    Ok(())
}

/// `lockstep-testnet`, beside the `lockstep` binary.
fn testnet_binary() -> eyre::Result<PathBuf> {
    let bin = lockstep_testnet::lockstep_binary()?.with_file_name("lockstep-testnet");
    eyre::ensure!(
        bin.is_file(),
        "{} is missing: build it (cargo build --workspace --bins --features lockstep-node/byzantine)",
        bin.display()
    );
    Ok(bin)
}

/// A `lockstep-testnet up` process, stopped like Ctrl-C (SIGINT) when dropped, killed if it
/// does not exit in time.
struct Up {
    child: Option<Child>,
    dir: PathBuf,
}

impl Up {
    fn start(dir: &Path, args: &[&str], path_env: Option<&str>) -> eyre::Result<Up> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::File::create(dir.join("up.log"))?;
        let mut cmd = Command::new(testnet_binary()?);
        cmd.arg("up").arg("--dir").arg(dir).args(args);
        if let Some(p) = path_env {
            cmd.env("PATH", p).env_remove("PROMETHEUS_BIN");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Up {
            child: Some(child),
            dir: dir.to_path_buf(),
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default()
    }

    /// Whether it has exited, and how.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok()?
    }

    /// SIGINT, then waits for it to exit (SIGKILL after `grace`).
    fn interrupt(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // Not a process that has exited and been reaped: its pid may be another's by now.
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = std::time::Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.interrupt(Duration::from_secs(30));
    }
}

/// `GET path` of the HTTP server at `base` (`http://host:port`): the status and the body.
/// HTTP/1.0, so the answer is never chunked and ends when the connection closes.
async fn http_get(base: &str, path: &str) -> eyre::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(host).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), ask).await??;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| eyre::eyre!("no HTTP answer from {host}{path}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| eyre::eyre!("bad status line from {host}{path}: {head}"))?;
    Ok((status, body.to_string()))
}

/// The `data` of a Prometheus HTTP API answer.
async fn prometheus_api(base: &str, path: &str) -> eyre::Result<Value> {
    let (status, body) = http_get(base, path).await?;
    let v: Value = serde_json::from_str(&body)?;
    eyre::ensure!(
        status == 200 && v["status"] == "success",
        "{path}: {status} {body}"
    );
    Ok(v["data"].clone())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Active alerts (pending or firing): `(alertname, node, state)`.
async fn active_alerts(prometheus: &str) -> eyre::Result<Vec<(String, String, String)>> {
    let data = prometheus_api(prometheus, "/api/v1/alerts").await?;
    Ok(data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["node"]),
                s(&a["state"]),
            )
        })
        .collect())
}

/// Waits until each `(alertname, node)` of `want` is firing; returns every firing alert.
async fn firing_alerts(
    prometheus: &str,
    want: &[(&str, &str)],
) -> eyre::Result<BTreeSet<(String, String)>> {
    let what = format!("{want:?} firing");
    eventually(&what, Duration::from_secs(90), || async {
        let firing: BTreeSet<(String, String)> = active_alerts(prometheus)
            .await
            .ok()?
            .into_iter()
            .filter(|(_, _, state)| state == "firing")
            .map(|(name, node, _)| (name, node))
            .collect();
        want.iter()
            .all(|(n, node)| firing.contains(&(n.to_string(), node.to_string())))
            .then_some(firing)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_monitor_runs_prometheus_that_scrapes_every_node_and_evaluates_the_rules(
) -> eyre::Result<()> {
    let dir = network_dir("monitoring-prometheus");
    let mut up = Up::start(&dir, &["--monitor"], None)?;
    let endpoints = dir.join(lockstep_testnet::ENDPOINTS_FILE);
    let ep: Value = eventually("endpoints.json with the Prometheus address", READY, || {
        if let Some(status) = up.exited() {
            panic!("lockstep-testnet up exited ({status}):\n{}", up.log());
        }
        let v = std::fs::read_to_string(&endpoints)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .filter(|v| v["prometheus"].is_string());
        async move { v }
    })
    .await?;
    let prometheus = ep["prometheus"].as_str().unwrap().to_string();
    assert!(prometheus.starts_with("http://127.0.0.1:"), "{prometheus}");
    let nodes: BTreeSet<String> = ep["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 4);
    // Its configuration, rules and data are in the network's folder.
    for f in [
        "prometheus/prometheus.yml",
        "prometheus/alerts.yml",
        "prometheus/data",
    ] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("prometheus/alerts.yml"))?,
        std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yml"))?,
        "the rules Prometheus loads are deploy/prometheus/alerts.yml"
    );

    // Every node is a target, up.
    eventually("every node scraped and up", READY, || async {
        let data = prometheus_api(&prometheus, "/api/v1/targets").await.ok()?;
        let up: BTreeSet<String> = data["activeTargets"]
            .as_array()?
            .iter()
            .filter(|t| t["health"] == "up" && t["labels"]["job"] == "lockstep")
            .filter_map(|t| t["labels"]["node"].as_str().map(str::to_string))
            .collect();
        (up == nodes).then_some(())
    })
    .await?;

    // Every rule of alerts.yml loaded, and evaluated without error.
    let want: BTreeMap<String, String> = alert_exprs(&std::fs::read_to_string(
        deploy_dir().join("prometheus/alerts.yml"),
    )?)?
    .into_iter()
    .collect();
    let loaded: BTreeMap<String, String> = eventually("every rule evaluated", READY, || async {
        let data = prometheus_api(&prometheus, "/api/v1/rules").await.ok()?;
        let rules: Vec<&Value> = data["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        if rules.iter().any(|r| r["health"] != "ok") {
            return None;
        }
        Some(
            rules
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("name"), s("query"))
                })
                .collect(),
        )
    })
    .await?;
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the rules Prometheus loaded"
    );
    // Prometheus's own parse of each expression names the same metrics as this file's reader
    // and tokenizer do.
    for (name, query) in &loaded {
        assert_eq!(
            metric_names(query),
            metric_names(&want[name]),
            "{name}: {query}"
        );
    }

    // The height of every node.
    let data = prometheus_api(
        &prometheus,
        &format!(
            "/api/v1/query?query={}",
            url_encode("lockstep_consensus_height{job=\"lockstep\"}")
        ),
    )
    .await?;
    let heights: BTreeMap<String, f64> = data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["node"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        heights.keys().cloned().collect::<BTreeSet<_>>(),
        nodes,
        "{data}"
    );
    assert!(heights.values().all(|&h| h >= 1.0), "{heights:?}");

    // Every dashboard query is PromQL Prometheus evaluates (Grafana's variables filled in).
    for (place, expr) in dashboard_uses()? {
        let q = expr
            .replace("$__rate_interval", "10s")
            .replace("$node", ".*");
        let path = format!("/api/v1/query?query={}", url_encode(&q));
        if let Err(e) = prometheus_api(&prometheus, &path).await {
            panic!("{place}: {expr}: {e}");
        }
    }

    // A healthy network: no alert firing (but for free disk space, which is the test
    // machine's). Some may be pending: the first heights of a new network take longer.
    let active = active_alerts(&prometheus).await?;
    eprintln!("active alerts on a healthy network: {active:?}");
    let firing: Vec<_> = active
        .iter()
        .filter(|(name, _, state)| state == "firing" && !name.starts_with("LockstepDisk"))
        .collect();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy network: {firing:?}"
    );

    // A killed node: LockstepNodeDown fires for it (after its 15 s), and nothing for the
    // others, which go on deciding heights.
    let kill = |i: usize| {
        let pid = ep["nodes"][i]["pid"].as_u64().unwrap() as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
    };
    kill(3)?;
    let firing = firing_alerts(&prometheus, &[("LockstepNodeDown", "node3")]).await?;
    let others: Vec<_> = firing
        .iter()
        .filter(|(n, node)| !n.starts_with("LockstepDisk") && node != "node3")
        .collect();
    assert!(others.is_empty(), "{others:?}");

    // A second one: two of four cannot decide. The two left see no new height and have
    // fewer peers than a quorum needs.
    kill(2)?;
    firing_alerts(
        &prometheus,
        &[
            ("LockstepNodeDown", "node2"),
            ("LockstepNoNewHeight", "node0"),
            ("LockstepNoNewHeight", "node1"),
            ("LockstepPeersBelowQuorum", "node0"),
            ("LockstepPeersBelowQuorum", "node1"),
        ],
    )
    .await?;

    // Ctrl-C: Prometheus stops with the network, its data stays in the network's folder.
    let status = up.interrupt(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}:\n{}",
        up.log()
    );
    assert!(
        http_get(&prometheus, "/-/ready").await.is_err(),
        "Prometheus still answers"
    );
    assert!(dir.join("prometheus/data").is_dir());
    Ok(())
}

#[test]
fn up_monitor_without_prometheus_fails_before_starting_and_names_the_package() {
    let dir = network_dir("monitoring-no-prometheus");
    let mut up = Up::start(&dir, &["--monitor"], Some("/nonexistent/bin")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = up.exited() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = up.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("apt-get install prometheus"), "{log}");
    assert!(
        !dir.join(lockstep_testnet::ENDPOINTS_FILE).exists(),
        "a network started:\n{log}"
    );
}
