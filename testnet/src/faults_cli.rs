//! `lockstep-testnet faults`: runs fault scenarios and prints a table of scenario × property.

use lockstep_testnet::faults::{self, Outcome, RunSpec};
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
        for v in &outcome.verdicts {
            println!(
                "   {:<16} {}  {}",
                v.property,
                if v.pass { "pass" } else { "FAIL" },
                v.detail
            );
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
