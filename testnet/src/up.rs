//! `lockstep-testnet up`: start a local network in the foreground, print its endpoints, watch
//! its nodes, and stop them all on Ctrl-C. With `--monitor`, also a Prometheus that scrapes
//! every node and evaluates the alert rules of `deploy/prometheus/`.

use eyre::{bail, eyre, Context as _};
use lockstep_testnet::{Cluster, ClusterOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) async fn up(
    validators: usize,
    full_nodes: usize,
    dir: PathBuf,
    monitor: bool,
) -> eyre::Result<()> {
    // Found before anything starts: --monitor without Prometheus fails at once.
    let prometheus_bin = if monitor {
        Some(prometheus_binary()?)
    } else {
        None
    };
    let opts = ClusterOptions {
        validators,
        full_nodes,
        ..Default::default()
    };
    let mut cluster = Cluster::create(&dir, &opts)?;
    cluster.start_all()?;
    let ready = cluster.wait_ready(Duration::from_secs(60)).await;
    if let Err(e) = ready {
        cluster.stop_all()?;
        return Err(e);
    }
    let mut prometheus = match prometheus_bin {
        None => None,
        Some(bin) => match Prometheus::start(&bin, &cluster).await {
            Ok(p) => Some(p),
            Err(e) => {
                cluster.stop_all()?;
                return Err(e);
            }
        },
    };
    let with_full = match full_nodes {
        0 => String::new(),
        1 => " and 1 full node".to_string(),
        n => format!(" and {n} full nodes"),
    };
    println!(
        "Lockstep network of {validators} validators{with_full}, chain id {}",
        cluster.chain_id
    );
    for n in &cluster.endpoints().nodes {
        println!(
            "  {:<7} {:<9} rpc {}  ws {}  metrics {}",
            n.name,
            n.role.to_string(),
            n.rpc,
            n.ws,
            n.metrics
        );
    }
    if let Some(p) = &prometheus {
        println!(
            "  prometheus {}  (alerts: {}/alerts)",
            p.url,
            p.url.trim_end_matches('/')
        );
    }
    println!(
        "endpoints: {}",
        cluster.dir.join(lockstep_testnet::ENDPOINTS_FILE).display()
    );
    println!("logs:      {}/*/node.log", cluster.dir.display());
    if let Some(p) = &prometheus {
        println!("           {}", p.log().display());
    }
    println!("Ctrl-C stops all nodes.");
    let mut watch = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = watch.tick() => {
                for i in 0..cluster.nodes.len() {
                    if !cluster.nodes[i].is_running() {
                        eprintln!("{} exited; see {}/node.log", cluster.nodes[i].name, cluster.nodes[i].home.display());
                    }
                }
                if let Some(p) = &mut prometheus {
                    if !p.is_running() {
                        eprintln!("prometheus exited; see {}", p.log().display());
                    }
                }
            }
        }
    }
    println!("stopping…");
    if let Some(p) = prometheus {
        p.stop();
    }
    cluster.stop_all()?;
    println!("stopped; data kept in {}", cluster.dir.display());
    Ok(())
}

/// `deploy/prometheus/prometheus.yml`, the template the generated configuration is made from:
/// the same settings, with this network's nodes between the target markers.
const CONFIG_TEMPLATE: &str = include_str!("../../deploy/prometheus/prometheus.yml");
/// `deploy/prometheus/alerts.yml`, written beside the generated configuration.
const ALERT_RULES: &str = include_str!("../../deploy/prometheus/alerts.yml");
const TARGETS_BEGIN: &str = "# targets: begin";
const TARGETS_END: &str = "# targets: end";
/// The Debian package that ships the `prometheus` binary.
const PROMETHEUS_PACKAGE: &str = "prometheus";
/// Names another `prometheus` binary than the one on PATH.
const PROMETHEUS_BIN_ENV: &str = "PROMETHEUS_BIN";
/// Prometheus's usual port, taken when it is free (another free port otherwise).
const PROMETHEUS_PORT: u16 = 9090;
/// The folder in the network's where Prometheus's configuration, data and log are.
const PROMETHEUS_DIR: &str = "prometheus";
/// How long Prometheus may take to answer `/-/ready`.
const PROMETHEUS_READY: Duration = Duration::from_secs(30);
/// Local networks keep little history.
const RETENTION_TIME: &str = "2d";
const RETENTION_SIZE: &str = "1GB";

/// The `prometheus` binary: `$PROMETHEUS_BIN`, else the first on PATH.
fn prometheus_binary() -> eyre::Result<PathBuf> {
    locate_prometheus(
        std::env::var_os(PROMETHEUS_BIN_ENV),
        std::env::var_os("PATH").as_deref(),
    )
}

fn locate_prometheus(
    chosen: Option<std::ffi::OsString>,
    path: Option<&std::ffi::OsStr>,
) -> eyre::Result<PathBuf> {
    if let Some(p) = chosen {
        return Ok(PathBuf::from(p));
    }
    find_in("prometheus", path).ok_or_else(|| {
        eyre!(
            "--monitor starts Prometheus, but the prometheus binary is not on PATH: install \
             the Debian package `{PROMETHEUS_PACKAGE}` (apt-get install {PROMETHEUS_PACKAGE}; \
             scripts/deps.sh does), or set {PROMETHEUS_BIN_ENV}"
        )
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    find_in(name, std::env::var_os("PATH").as_deref())
}

fn find_in(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The Prometheus configuration for `targets` (`(node name, host:port)`): the template with
/// its example targets replaced.
fn scrape_config(
    template: &str,
    network: &Path,
    targets: &[(String, String)],
) -> eyre::Result<String> {
    let (head, rest) = template
        .split_once(TARGETS_BEGIN)
        .ok_or_else(|| eyre!("the Prometheus template has no `{TARGETS_BEGIN}` line"))?;
    let (_, tail) = rest
        .split_once(TARGETS_END)
        .ok_or_else(|| eyre!("the Prometheus template has no `{TARGETS_END}` line"))?;
    let indent = head.rsplit('\n').next().unwrap_or_default();
    // The template's opening comment (how to edit it) gives way to this one.
    let settings = match head.split_once("\n\n") {
        Some((opening, rest)) if opening.starts_with('#') => rest,
        _ => head,
    };
    let mut out = format!(
        "# Generated by `lockstep-testnet up --monitor` from deploy/prometheus/prometheus.yml\n\
         # for the network in {}; written again at each start.\n\n",
        network.display()
    );
    out.push_str(settings);
    out.push_str(TARGETS_BEGIN);
    out.push('\n');
    for (node, addr) in targets {
        out.push_str(&format!(
            "{indent}- targets: [\"{addr}\"]\n{indent}  labels:\n{indent}    node: \"{node}\"\n"
        ));
    }
    out.push_str(indent);
    out.push_str(TARGETS_END);
    out.push_str(tail);
    Ok(out)
}

/// A Prometheus process scraping a local network, stopped with it.
struct Prometheus {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    url: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Writes the configuration and rules into the network's `prometheus/` folder, starts
    /// Prometheus on them, waits until it is ready, and adds its address to `endpoints.json`.
    async fn start(bin: &Path, cluster: &Cluster) -> eyre::Result<Prometheus> {
        let dir = cluster.dir.join(PROMETHEUS_DIR);
        std::fs::create_dir_all(dir.join("data"))
            .wrap_err_with(|| format!("cannot make {}", dir.display()))?;
        let targets: Vec<(String, String)> = cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.config.metrics.listen.to_string()))
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            scrape_config(CONFIG_TEMPLATE, &cluster.dir, &targets)?,
        )?;
        std::fs::write(dir.join("alerts.yml"), ALERT_RULES)?;
        let listen = format!("127.0.0.1:{}", listen_port()?);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("prometheus.log"))?;
        let child = command(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--storage.tsdb.retention.time={RETENTION_TIME}"))
            .arg(format!("--storage.tsdb.retention.size={RETENTION_SIZE}"))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", bin.display()))?;
        let mut p = Prometheus {
            child: Some(child),
            url: format!("http://{listen}"),
            dir,
        };
        let deadline = tokio::time::Instant::now() + PROMETHEUS_READY;
        while !is_ready(&listen).await {
            if !p.is_running() {
                bail!(
                    "prometheus exited while starting; see {}:\n{}",
                    p.log().display(),
                    log_tail(&p.log())
                );
            }
            if tokio::time::Instant::now() > deadline {
                let log = p.log();
                p.stop();
                bail!(
                    "prometheus did not answer {listen}/-/ready within {PROMETHEUS_READY:?}; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        record_in_endpoints(&cluster.dir, &p.url)?;
        Ok(p)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGTERM (Prometheus flushes and exits), SIGKILL after 10 s.
    fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `bin` through `setpriv --pdeathsig TERM` (util-linux) when it is installed, so that
/// Prometheus stops also when this process is killed outright (the nodes have
/// `--exit-with-parent` for that; Prometheus has nothing of the kind).
fn command(bin: &Path) -> Command {
    match find_on_path("setpriv") {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "TERM", "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// [`PROMETHEUS_PORT`] when it is free, else any free port on loopback.
fn listen_port() -> eyre::Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", PROMETHEUS_PORT)).is_ok() {
        return Ok(PROMETHEUS_PORT);
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether Prometheus at `addr` answers `GET /-/ready` with 200.
async fn is_ready(addr: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n").await?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.split_whitespace().nth(1) == Some("200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Ok(true))
    )
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Adds `"prometheus": url` to the network's `endpoints.json`. The harness writes that file
/// again whenever it starts or stops a node; `up` does neither until it stops Prometheus.
fn record_in_endpoints(dir: &Path, url: &str) -> eyre::Result<()> {
    let path = dir.join(lockstep_testnet::ENDPOINTS_FILE);
    let mut endpoints: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path)?)
            .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    endpoints
        .as_object_mut()
        .ok_or_else(|| eyre!("{} is not a JSON object", path.display()))?
        .insert("prometheus".into(), url.into());
    std::fs::write(&path, serde_json::to_string_pretty(&endpoints)? + "\n")
        .wrap_err_with(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_config_scrapes_each_node_and_keeps_the_template_settings() {
        let targets = vec![
            ("node0".to_string(), "127.0.0.1:20001".to_string()),
            ("node1".to_string(), "127.0.0.1:20005".to_string()),
        ];
        let c = scrape_config(CONFIG_TEMPLATE, Path::new("/tmp/net"), &targets).unwrap();
        assert!(c.starts_with("# Generated by `lockstep-testnet up --monitor`"));
        for (node, addr) in &targets {
            assert!(c.contains(&format!("- targets: [\"{addr}\"]\n")), "{c}");
            assert!(c.contains(&format!("node: \"{node}\"\n")), "{c}");
        }
        // The template's example targets are gone; its settings and rules are kept.
        assert!(!c.contains("10.0.0.10"), "{c}");
        for kept in [
            "scrape_interval: 2s",
            "evaluation_interval: 2s",
            "- alerts.yml",
            "job_name: lockstep",
            TARGETS_END,
        ] {
            assert!(c.contains(kept), "{kept} missing from\n{c}");
        }
        let targets_lines = c
            .lines()
            .filter(|l| l.trim_start().starts_with("- targets:"))
            .count();
        assert_eq!(targets_lines, 2, "{c}");
        // The template's opening comment, about editing it, is not copied.
        assert!(!c.contains("A template."), "{c}");
    }

    #[test]
    fn a_template_without_the_target_markers_is_refused() {
        let e = scrape_config("global: {}\n", Path::new("/tmp/net"), &[]).unwrap_err();
        assert!(e.to_string().contains(TARGETS_BEGIN), "{e}");
    }

    #[test]
    fn monitor_without_prometheus_names_the_package() {
        let e = locate_prometheus(None, Some(std::ffi::OsStr::new("/nonexistent/bin")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install prometheus"), "{e}");
        assert!(e.contains(PROMETHEUS_BIN_ENV), "{e}");
    }

    #[test]
    fn prometheus_is_found_on_the_path_or_where_the_variable_says() {
        let dir = std::env::temp_dir().join(format!("lockstep-up-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prometheus"), "").unwrap();
        let path = std::env::join_paths(["/nonexistent/bin".into(), dir.clone()]).unwrap();
        assert_eq!(
            locate_prometheus(None, Some(&path)).unwrap(),
            dir.join("prometheus")
        );
        assert_eq!(
            locate_prometheus(Some("/opt/prom".into()), None).unwrap(),
            PathBuf::from("/opt/prom")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
