//! Running an npm package's suite from a Rust test (the TypeScript SDK's live suite, the
//! explorer's browser test): the tools it needs, `npm ci` when its packages are missing or
//! stale, and `npm` itself within a time limit.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `program --version`, or an error saying that `who` needs it (`what` it is) and that
/// scripts/deps.sh installs it.
pub fn require(program: &str, who: &str, what: &str) -> eyre::Result<String> {
    let out = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|e| {
            eyre::eyre!(
                "{who} needs `{program}` ({what}) on PATH and cannot run it: {e}. Install it \
                 (Debian: apt-get install nodejs npm chromium; scripts/deps.sh does)"
            )
        })?;
    eyre::ensure!(
        out.status.success(),
        "`{program} --version` failed: {}",
        out.status
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the packages in `dir` must be installed: no `node_modules`, or one older than the
/// lock file (as scripts/test.sh decides).
pub fn needs_ci(dir: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    }
}

/// Runs `npm args…` in `dir` with `env`, its output shown, within `timeout`.
pub async fn run(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> eyre::Result<ExitStatus> {
    let mut child = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| eyre::eyre!("cannot start npm {args:?} in {}: {e}", dir.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            eyre::bail!("npm {args:?} did not finish within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `npm ci` in `dir` if its packages are missing or stale.
pub async fn install(dir: &Path, timeout: Duration) -> eyre::Result<()> {
    if needs_ci(dir) {
        let status = run(dir, &["ci", "--no-audit", "--no-fund"], &[], timeout).await?;
        eyre::ensure!(
            status.success(),
            "npm ci in {} failed: {status}",
            dir.display()
        );
    }
    Ok(())
}
