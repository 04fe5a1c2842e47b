#![allow(clippy::unwrap_used)]
//! The fault matrix CI runs: every named scenario of `lockstep-testnet faults` once, on four
//! validators in network namespaces (root needed: without it each test fails saying so), each
//! judged by the checker on every property. Histories go to `target/fault-results/`. The
//! `byz-*` scenarios need `lockstep-byzantine` (the node built with `--features
//! lockstep-node/byzantine`), which `scripts/test.sh` builds.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

use lockstep_testnet::faults::{self, RunSpec};
use std::time::Duration;

/// Each fault is held this long (the CLI's default is 10 s; CI keeps the matrix short).
const HOLD: Duration = Duration::from_secs(8);

async fn scenario(name: &str) {
    let work = std::env::temp_dir().join("lockstep-faults-tests");
    faults::cleanup_stale(&work);
    let sc = faults::scenario(name, 1, Duration::ZERO, HOLD).unwrap();
    let mut spec = RunSpec::new(sc, 1);
    spec.hold = HOLD;
    spec.work = work;
    spec.out = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "../target".into())
        .join("fault-results");
    let outcome = faults::run(&spec, &mut |line| eprintln!("[{name}] {line}"))
        .await
        .unwrap_or_else(|e| panic!("{name}: the run failed: {e:#}"));
    let table = faults::table(std::slice::from_ref(&outcome));
    eprintln!("{table}");
    if let Some(c) = &outcome.censorship {
        eprintln!("[{name}] censorship: {}", c.describe());
    }
    assert!(
        outcome.passed(),
        "{name}:\n{table}\n{}",
        faults::failures(std::slice::from_ref(&outcome))
    );
}

macro_rules! scenarios {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                scenario($name).await;
            }
        )*
        #[test]
        fn every_named_scenario_has_a_test() {
            let tested = [$($name),*];
            for n in faults::NAMES {
                assert!(tested.contains(&n), "scenario {n} has no test here");
            }
        }
    };
}

scenarios! {
    partition_2_2_makes_no_progress_and_forks_nothing => "partition-2-2",
    a_minority_of_one_is_cut_off => "minority-1-3",
    a_bridge_node_sees_both_sides => "bridge",
    one_way_loss_of_a_validators_packets => "one-way",
    a_paused_validator => "pause",
    kill_9_and_restart => "kill-restart",
    graceful_restart => "restart",
    a_wiped_store_resyncs => "wiped-store",
    a_clock_ahead => "clock-ahead",
    a_clock_behind => "clock-behind",
    a_full_disk => "disk-full",
    a_full_disk_without_the_free_space_guard => "disk-full-unguarded",
    slow_lossy_links => "slow-lossy-links",
    a_validator_removed_and_added_back_by_set_updates => "set-change",
    a_validator_signing_two_votes_for_each => "byz-equivocate-votes",
    a_proposer_signing_two_proposals_for_each => "byz-equivocate-proposals",
    a_silent_validator => "byz-silent",
    a_proposer_withholding_its_bundles => "byz-withhold",
    a_proposer_censoring_a_signer => "byz-censor",
    a_proposer_of_invalid_blocks => "byz-invalid",
    a_validator_flooding_junk_proposals => "byz-flood",
    two_of_seven_signing_two_votes_for_each => "byz7-equivocate-votes",
}
