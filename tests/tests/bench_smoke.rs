//! The benchmark's smoke run (small load, well under a minute): its JSON is produced and sane.
//! Speed is not asserted; that is what the benchmark reports.

#![allow(clippy::unwrap_used)]

use lockstep_tests::network_dir;

#[test]
fn bench_smoke_run_delivers_every_bundle_and_reports_ordered_percentiles() {
    let bin = lockstep_testnet::lockstep_binary()
        .unwrap()
        .with_file_name("lockstep-testnet");
    let out = network_dir("bench-out");
    let status = std::process::Command::new(&bin)
        .args(["bench", "--smoke", "--out"])
        .arg(&out)
        .arg("--dir")
        .arg(network_dir("bench-net"))
        .status()
        .unwrap();
    assert!(status.success(), "{} bench --smoke failed", bin.display());
    let file = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"))
    };
    assert_eq!(num("validators"), 4.0);
    assert!(num("sent") > 0.0);
    assert_eq!(
        num("delivered"),
        num("sent"),
        "every sent bundle delivered: {r}"
    );
    assert_eq!(num("rejected"), 0.0);
    let ordered = |l: &serde_json::Value| {
        let q = |k: &str| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {l}"))
        };
        let (p50, p90, p99, max) = (q("p50"), q("p90"), q("p99"), q("max"));
        assert!(
            0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "percentiles ordered: {l}"
        );
    };
    ordered(&r["latency_ms"]);
    let split = &r["latency_split_ms"];
    for k in ["due_to_block", "block_to_delivery", "block_interval"] {
        ordered(&split[k]);
    }
    for k in [
        "delivered_bundles_per_s",
        "raw_verify_per_s",
        "ceiling_bundles_per_s",
        "ratio_to_ceiling",
        "heights",
        "duration_s",
        "rss_peak_mb",
    ] {
        assert!(num(k) > 0.0, "{k} is positive: {r}");
    }
    let nodes = r["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(nodes
        .iter()
        .all(|n| n["cpu_s"].as_f64().unwrap() > 0.0 && n["rss_peak_mb"].as_f64().unwrap() > 0.0));
    // The peak is the kernel's high-water mark for this run (reset at its start), and what
    // was sent is what was planned when the run was not cut short.
    assert_eq!(r["rss_peak_scope"], "run", "{r}");
    assert_eq!(r["ended_by_deadline"], false, "{r}");
    assert_eq!(num("sent"), num("planned"), "{r}");
}
