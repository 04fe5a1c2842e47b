//! `lockstep-testnet faults`: runs fault scenarios and prints a table of scenario × property.

use eyre::WrapErr;
use lockstep_testnet::faults::{self, checker, history::History, Outcome, RunSpec};
use std::path::PathBuf;
use std::time::Duration;

pub(crate) async fn faults(
    scenario: String,
    seed: u64,
    duration: u64,
    hold: u64,
    out: PathBuf,
) -> eyre::Result<()> {
    let names: Vec<String> = if scenario == "all" {
        faults::NAMES.iter().map(|s| s.to_string()).collect()
    } else if scenario == "all-byzantine" {
        faults::NAMES
            .iter()
            .chain(faults::BYZANTINE_7.iter())
            .filter(|n| n.starts_with("byz"))
            .map(|s| s.to_string())
            .collect()
    } else {
        scenario.split(',').map(|s| s.trim().to_string()).collect()
    };
    let work = std::env::temp_dir().join("lockstep-faults");
    faults::cleanup_stale(&work);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for name in &names {
        let sc = faults::scenario(
            name,
            seed,
            Duration::from_secs(duration),
            Duration::from_secs(hold),
        )?;
        println!("== {name} (seed {seed}): {} fault(s)", sc.steps.len());
        let mut spec = RunSpec::new(sc, seed);
        spec.hold = Duration::from_secs(hold);
        spec.out = out.clone();
        spec.work = work.clone();
        let outcome = faults::run(&spec, &mut |line| println!("   {line}")).await?;
        print_verdicts(&outcome.verdicts);
        if let Some(c) = &outcome.censorship {
            println!("   censorship       {}", c.describe());
        }
        println!("   history: {}", outcome.dir.display());
        outcomes.push(outcome);
    }
    println!("\n{}", faults::table(&outcomes));
    let failed = faults::failures(&outcomes);
    if !failed.is_empty() {
        eyre::bail!("properties failed:\n{failed}");
    }
    Ok(())
}

/// Judges the `history.json` a past run saved in `dir` again, with this build's checker.
pub(crate) fn recheck(dir: &std::path::Path) -> eyre::Result<()> {
    let path = dir.join("history.json");
    let text = std::fs::read_to_string(&path)
        .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let history: History = serde_json::from_str(&text)
        .wrap_err_with(|| format!("{} is not a fault run's history", path.display()))?;
    println!(
        "== {} (seed {}), judged again: {}",
        history.scenario,
        history.seed,
        path.display()
    );
    let verdicts = checker::check(&history);
    print_verdicts(&verdicts);
    if let Some(c) = faults::behaviour::measure(&history) {
        println!("   censorship       {}", c.describe());
    }
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| format!("{}: {}", v.property, v.detail))
        .collect();
    if !failed.is_empty() {
        eyre::bail!("properties failed:\n{}", failed.join("\n"));
    }
    Ok(())
}

fn print_verdicts(verdicts: &[checker::Verdict]) {
    for v in verdicts {
        println!(
            "   {:<16} {}  {}",
            v.property,
            if v.pass { "pass" } else { "FAIL" },
            v.detail
        );
    }
}
