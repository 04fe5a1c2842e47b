//! `lockstep-testnet bench`, its single, smoke and full runs (saturation, latency at half of
//! it, 64 KiB legs, scaling over 4, 7 and 10 validators), and what every run shares: a fresh
//! network, a progress spinner, a time stamp for file names.

use lockstep_testnet::{bench, Cluster, ClusterOptions};
use std::time::Duration;

/// Offered rate of the 64 KiB-leg run: 400 bundles/s is about 26 MB/s of leg data.
const LARGE_LEG_RATE: f64 = 400.0;

pub(crate) fn stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn spinner() -> indicatif::ProgressBar {
    let p = indicatif::ProgressBar::new_spinner();
    p.enable_steady_tick(Duration::from_millis(200));
    p
}

/// The machine's raw batch-verification rate on the same kind of keys as `spec`'s load
/// (distinct keys, or its bundles per signer), over `samples` signatures, off the runtime.
pub(crate) async fn ceiling_for(
    spec: &bench::RunSpec,
    samples: usize,
) -> eyre::Result<bench::RawVerify> {
    let per_signer = spec.bundles_per_signer;
    Ok(
        tokio::task::spawn_blocking(move || bench::raw_verify_rate_with(samples, per_signer))
            .await?,
    )
}

pub(crate) async fn bench_network(
    base: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
) -> eyre::Result<Cluster> {
    let dir = base.join(format!("{validators}v"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Cluster::create(
        &dir,
        &ClusterOptions {
            validators,
            target_block_time_ms: spec.block_time_ms,
            propose_wait_ms: spec.propose_wait_ms,
            publish_linger_ms: spec.publish_linger_ms,
            keep_heights: spec.keep_heights,
            // A link delay needs the lab's relay (the kernel has no netem).
            network: if spec.link_delay_ms.is_some() {
                lockstep_testnet::Network::Lab { relay: true }
            } else {
                lockstep_testnet::Network::Loopback
            },
            ..Default::default()
        },
    )?;
    if let (Some(delay), Some(lab)) = (spec.link_delay_ms, c.lab()) {
        lab.set_delay_all(
            Duration::from_millis(delay),
            Duration::from_millis(spec.link_jitter_ms),
        )?;
    }
    c.start_all()?;
    c.wait_ready(Duration::from_secs(120)).await?;
    Ok(c)
}

pub(crate) async fn bench_single(
    base: &std::path::Path,
    out: &std::path::Path,
    validators: usize,
    spec: &bench::RunSpec,
    hostile: bool,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = ceiling_for(spec, 20_000).await?;
    p.set_message(format!("starting {validators} validators"));
    let mut cluster = bench_network(base, validators, spec).await?;
    let strangers = if hostile {
        p.set_message(format!(
            "opening {} idle WebSockets and {} gossip connections",
            bench::IDLE_WEBSOCKETS,
            bench::GOSSIP_CONNECTIONS
        ));
        Some(bench::Hostile::open(&cluster).await?)
    } else {
        None
    };
    let mut r = bench::run_once(&cluster, spec, raw, 1, Some(&p)).await?;
    if let Some(s) = strangers {
        r.hostile = Some(s.finish().await);
    }
    cluster.stop_all()?;
    p.finish_and_clear();
    let kind = if hostile { "hostile-" } else { "" };
    let path = bench::write_json(
        out,
        &format!("run-{kind}{validators}v-{:.0}-{}.json", spec.rate, stamp()),
        &r,
    )?;
    println!("{}", serde_json::to_string(&r)?);
    eprintln!("written {}", path.display());
    Ok(())
}

pub(crate) async fn bench_smoke(base: &std::path::Path, out: &std::path::Path) -> eyre::Result<()> {
    let spec = bench::RunSpec {
        legs: 2,
        leg_bytes: 64,
        rate: 50.0,
        duration: Duration::from_secs(5),
        drain: Duration::from_secs(30),
        bundles_per_signer: bench::DEFAULT_BUNDLES_PER_SIGNER,
        block_time_ms: lockstep_node::config::DEFAULT_TARGET_BLOCK_TIME_MS,
        propose_wait_ms: lockstep_node::config::DEFAULT_PROPOSE_WAIT_MS,
        publish_linger_ms: lockstep_node::config::DEFAULT_PUBLISH_LINGER_MS,
        keep_heights: lockstep_node::config::DEFAULT_KEEP_HEIGHTS,
        link_delay_ms: None,
        link_jitter_ms: 0,
    };
    let raw = ceiling_for(&spec, 2_000).await?;
    let mut cluster = bench_network(base, 4, &spec).await?;
    let r = bench::run_once(&cluster, &spec, raw, 1, None).await?;
    cluster.stop_all()?;
    let path = bench::write_json(out, &format!("smoke-{}.json", stamp()), &r)?;
    println!("{}", serde_json::to_string(&r)?);
    eprintln!("written {}", path.display());
    Ok(())
}

pub(crate) async fn bench_full(
    base: &std::path::Path,
    out: &std::path::Path,
    spec: &bench::RunSpec,
    step: Duration,
) -> eyre::Result<()> {
    let p = spinner();
    p.set_message("measuring raw batch verification");
    let raw = ceiling_for(spec, 40_000).await?;
    let mut salt = stamp();
    let mut scaling = Vec::new();
    let mut all_runs = Vec::new();
    let mut latency = None;
    let mut large = None;
    for validators in [4usize, 7, 10] {
        p.set_message(format!("starting {validators} validators"));
        let mut cluster = bench_network(base, validators, spec).await?;
        let sat_spec = bench::RunSpec {
            duration: step,
            ..spec.clone()
        };
        let sat = bench::saturation(&cluster, &sat_spec, 200.0, raw, &mut salt, Some(&p)).await?;
        let row = bench::ScalingRow::of(validators, &sat);
        all_runs.extend(sat.steps);
        if validators == 4 {
            salt += 1;
            let half = bench::RunSpec {
                rate: (row.saturation_bundles_per_s / 2.0).max(10.0),
                ..spec.clone()
            };
            let lat = bench::run_once(&cluster, &half, raw, salt, Some(&p)).await?;
            all_runs.push(lat.clone());
            latency = Some(lat);
            salt += 1;
            let large_spec = bench::RunSpec {
                legs: 1,
                leg_bytes: 64 * 1024,
                rate: LARGE_LEG_RATE,
                ..spec.clone()
            };
            let lr = bench::run_once(&cluster, &large_spec, raw, salt, Some(&p)).await?;
            all_runs.push(lr.clone());
            large = Some(lr);
        }
        scaling.push(row);
        cluster.stop_all()?;
    }
    let (Some(latency), Some(large)) = (latency, large) else {
        return Err(eyre::eyre!("the 4-validator runs did not happen"));
    };
    let four: Vec<bench::RunResult> = all_runs
        .iter()
        .filter(|r| r.validators == 4 && r.legs == spec.legs && r.leg_bytes == spec.leg_bytes)
        .cloned()
        .collect();
    let sc: Vec<(usize, f64)> = scaling
        .iter()
        .map(|s| (s.validators, s.saturation_bundles_per_s))
        .collect();
    let summary = bench::Summary::new(scaling, &latency, &large)?;
    let png = out.join("summary.png");
    std::fs::create_dir_all(out)?;
    match bench::chart(&png, &four, &sc) {
        Ok(()) => eprintln!("chart {}", png.display()),
        Err(e) => eprintln!("no chart: {e}"),
    }
    p.finish_and_clear();
    for (i, r) in all_runs.iter().enumerate() {
        bench::write_json(
            out,
            &format!(
                "full-{}-{i:02}-{}v-{:.0}.json",
                stamp(),
                r.validators,
                r.offered_per_s
            ),
            r,
        )?;
    }
    let path = bench::write_json(out, "summary.json", &summary)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "written {} and {} run files",
        path.display(),
        all_runs.len()
    );
    Ok(())
}
