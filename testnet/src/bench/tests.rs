//! The benchmark's own tests: batching, the sender, the keep-up rule, saturation, memory,
//! the chart.

use super::*;

#[test]
fn batches_split_at_the_call_and_byte_bounds_in_order() {
    let many: Vec<String> = (0..BATCH_CALLS + 3).map(|i| i.to_string()).collect();
    let b = split_batches(many.clone(), String::len);
    assert_eq!(
        b.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![BATCH_CALLS, 3]
    );
    assert_eq!(b.concat(), many);
    let big = "x".repeat(BATCH_BYTES / 2 + 1);
    let b = split_batches(vec![big.clone(), big.clone(), "y".into()], String::len);
    assert_eq!(b, vec![vec![big.clone()], vec![big, "y".to_string()]]);
}

/// A run that offered `rate`, delivered `delivered_rate` per second, with median `p50`.
fn run(rate: f64, delivered_rate: f64, p50: f64) -> RunResult {
    let flat = Percentiles {
        p50: 1.0,
        p90: 1.0,
        p99: 1.0,
        max: 1.0,
    };
    let ceiling = 2_000.0;
    RunResult {
        validators: 4,
        target_block_time_ms: 100,
        propose_wait_ms: 100,
        publish_linger_ms: 10,
        keep_heights: 0,
        link_delay_ms: None,
        link_jitter_ms: 0,
        network: "loopback".into(),
        legs: 2,
        leg_bytes: 256,
        bundles_per_signer: 1,
        offered_per_s: rate,
        planned: 10,
        sent: 10,
        accepted: 10,
        rejected: 0,
        delivered: 10,
        delivered_bundles_per_s: delivered_rate,
        delivered_mb_per_s: 0.1,
        latency_ms: Percentiles {
            p50,
            p90: p50 * 1.5,
            p99: p50 * 2.0,
            max: p50 * 3.0,
        },
        latency_split_ms: LatencySplit {
            due_to_block: flat.clone(),
            block_to_delivery: flat.clone(),
            block_interval: flat,
        },
        raw_verify_per_s: ceiling * 4.0,
        raw_verify_keys: RawVerifyKeys::Distinct,
        ceiling_bundles_per_s: ceiling,
        ratio_to_ceiling: delivered_rate / ceiling,
        schedule_lag_ms_max: 0.0,
        ended_by_deadline: false,
        nodes: vec![],
        rss_peak_mb: 1.0,
        rss_peak_scope: RssScope::Run,
        heights: 1,
        duration_s: 1.0,
        hostile: None,
    }
}

fn result(rate: f64, p50: f64) -> RunResult {
    run(rate, rate, p50)
}

#[test]
fn chart_is_written_as_a_png() {
    assert!(
        std::path::Path::new(CHART_FONT).exists(),
        "{CHART_FONT} is missing: run scripts/deps.sh (it installs fonts-dejavu-core)"
    );
    let dir = std::env::temp_dir().join(format!("lockstep-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("chart.png");
    let _ = std::fs::remove_file(&path);
    let steps = vec![
        result(100.0, 40.0),
        result(300.0, 60.0),
        result(900.0, 300.0),
    ];
    chart(&path, &steps, &[(4, 900.0), (7, 600.0), (10, 400.0)]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[test]
fn a_run_is_sustained_only_with_p99_under_a_second_and_95_percent_of_the_plan_delivered() {
    let ok = result(100.0, 100.0);
    assert!(sustained(&ok));
    let slow = result(100.0, 600.0);
    assert!(!sustained(&slow));
    let mut lossy = result(100.0, 10.0);
    lossy.delivered = 9;
    assert!(!sustained(&lossy));
    // Everything sent was delivered, but the generator sent only 80% of the plan.
    let mut behind = result(100.0, 10.0);
    behind.planned = 10;
    behind.sent = 8;
    behind.accepted = 8;
    behind.delivered = 8;
    assert!(!sustained(&behind));
    let mut refused = result(100.0, 10.0);
    refused.rejected = 1;
    assert!(!sustained(&refused));
}

#[test]
fn saturation_reports_the_delivered_rate_of_its_best_sustained_step() {
    // 200 × 1.5^k offered; each step delivered a little less than it offered; the last
    // delivered the most but did not keep up (p99 of 2.4 s).
    let steps = vec![
        run(200.0, 198.0, 40.0),
        run(300.0, 296.0, 45.0),
        run(450.0, 430.5, 90.0),
        run(675.0, 510.0, 1200.0),
        run(551.1, 420.0, 300.0),
    ];
    let sat = Saturation::from_steps(steps.clone());
    let best = sat.best.as_ref().unwrap();
    assert_eq!(best.offered_per_s, 450.0);
    let row = ScalingRow::of(4, &sat);
    assert_eq!(row.saturation_bundles_per_s, 430.5);
    assert_eq!(row.saturation_offered_per_s, 450.0);
    assert_eq!(row.p50_ms, 90.0);
    let latency = run(215.25, 215.0, 30.0);
    let large = run(400.0, 150.0, 500.0);
    let summary = Summary::new(
        vec![row, ScalingRow::of(7, &Saturation::from_steps(vec![]))],
        &latency,
        &large,
    )
    .unwrap();
    // The summary's saturation is what one of its steps delivered, not what it offered,
    // and its ratio divides that delivered rate by the ceiling.
    assert!(steps
        .iter()
        .any(|s| s.delivered_bundles_per_s == summary.saturation_bundles_per_s));
    assert!(steps
        .iter()
        .all(|s| s.offered_per_s != summary.saturation_bundles_per_s));
    assert_eq!(summary.saturation_offered_per_s, 450.0);
    assert_eq!(
        summary.ratio_to_ceiling,
        summary.saturation_bundles_per_s / summary.ceiling_bundles_per_s
    );
    assert_eq!(
        summary.scaling[0].ratio_to_ceiling,
        summary.ratio_to_ceiling
    );
    assert_eq!(summary.validators, 4);
    assert_eq!(summary.latency_at_half_offered_per_s, 215.25);
    // No step kept up: nothing is reported as saturation.
    assert_eq!(summary.scaling[1].saturation_bundles_per_s, 0.0);
    assert_eq!(summary.scaling[1].saturation_offered_per_s, 0.0);
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["saturation_bundles_per_s"], 430.5);
    assert_eq!(json["raw_verify_keys"], "distinct");
    assert_eq!(json["rss_peak_scope_at_half"], "run");
}

#[test]
fn the_ceiling_names_the_keys_it_was_measured_on() {
    let distinct = RawVerify {
        per_s: 1.0,
        signatures_per_key: 1,
    };
    assert_eq!(distinct.keys_for(1).unwrap(), RawVerifyKeys::Distinct);
    assert_eq!(distinct.keys_for(400).unwrap(), RawVerifyKeys::Distinct);
    let mix = RawVerify {
        per_s: 1.0,
        signatures_per_key: 400,
    };
    assert_eq!(mix.keys_for(400).unwrap(), RawVerifyKeys::SameAsLoad);
    assert!(mix.keys_for(1).is_err());
    assert_eq!(raw_verify_rate_with(8, 400).signatures_per_key, 400);
    assert_eq!(raw_verify_rate(8).signatures_per_key, 1);
}

#[tokio::test]
async fn a_stopped_sender_issues_nothing_more_and_counts_only_what_it_sent() {
    // A validator that takes requests and never answers them.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            held.push(c);
        }
    });
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .build(url)
        .unwrap();
    let raw: Vec<String> = (0..1000).map(|i| format!("0x{i:04x}")).collect();
    let s = Arc::new(Sending::default());
    let sender = tokio::spawn(send_open_loop(
        vec![client],
        raw,
        200.0,
        Instant::now(),
        s.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.sent.load(Relaxed) < 20 {
        assert!(Instant::now() < deadline, "the sender sent nothing");
        tokio::time::sleep(TICK).await;
    }
    sender.abort();
    assert!(sender.await.unwrap_err().is_cancelled());
    let sent = s.sent.load(Relaxed);
    assert!((20..1000).contains(&sent), "{sent}");
    // One validator: bundles go in order, so the oldest unsent is the next after those
    // sent; none was answered.
    assert_eq!(s.oldest_unsent.load(Relaxed) as u64, sent);
    assert_eq!(s.accepted.load(Relaxed) + s.rejected.load(Relaxed), 0);
    hold.abort();
}

#[test]
fn peak_rss_is_the_kernels_mark_and_resets_to_the_current_rss() {
    let me = std::process::id();
    let before = proc_rss_peak_mb(me).unwrap();
    assert!(before > 0.0);
    let mut block = vec![0u8; 128 << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    // The current RSS first: other tests run on threads of this process and may grow it
    // between the two reads, and the mark only rises, so read in this order it is never
    // below the RSS read before it.
    let current = proc_rss_mb(me).unwrap();
    let peak = proc_rss_peak_mb(me).unwrap();
    assert!(
        peak >= current && peak >= 100.0,
        "peak {peak} MB, current {current} MB"
    );
    assert_eq!(
        block
            .iter()
            .step_by(4096)
            .map(|b| *b as usize)
            .sum::<usize>(),
        32768
    );
    drop(block);
    if !reset_rss_peak(me) {
        eprintln!("skipping the reset: /proc/{me}/clear_refs is not writable here");
        return;
    }
    let after = proc_rss_peak_mb(me).unwrap();
    assert!(
        after < peak - 64.0,
        "peak {peak} MB, after reset {after} MB"
    );
}
