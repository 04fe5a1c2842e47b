//! The saturation ramp, and the rows and summary a full run reports (from delivered rates).

use super::*;

/// Whether a run kept up: p99 within 1 s, at least 95% of the planned bundles (the offered
/// rate × the duration) delivered, and none refused.
pub fn sustained(r: &RunResult) -> bool {
    r.latency_ms.p99 <= 1000.0 && r.delivered as f64 >= 0.95 * r.planned as f64 && r.rejected == 0
}

/// A saturation ramp's steps and the one it reports.
#[derive(Debug, Clone)]
pub struct Saturation {
    /// Of the steps that kept up ([`sustained`]), the one that delivered the most per second;
    /// `None` if none kept up.
    pub best: Option<RunResult>,
    /// Every step, in the order run.
    pub steps: Vec<RunResult>,
}

impl Saturation {
    pub fn from_steps(steps: Vec<RunResult>) -> Saturation {
        let best = steps
            .iter()
            .filter(|r| sustained(r))
            .max_by(|a, b| {
                a.delivered_bundles_per_s
                    .total_cmp(&b.delivered_bundles_per_s)
            })
            .cloned();
        Saturation { best, steps }
    }
}

/// One row of the scaling table: what a saturation ramp found on `validators` validators.
#[derive(Debug, Clone, Serialize)]
pub struct ScalingRow {
    pub validators: usize,
    /// The delivered rate of [`Saturation::best`] (0 if no step kept up).
    pub saturation_bundles_per_s: f64,
    /// The rate that step offered.
    pub saturation_offered_per_s: f64,
    /// That step's `ratio_to_ceiling` (its delivered rate ÷ its ceiling).
    pub ratio_to_ceiling: f64,
    /// That step's median latency.
    pub p50_ms: f64,
}

impl ScalingRow {
    pub fn of(validators: usize, saturation: &Saturation) -> ScalingRow {
        let best = saturation.best.as_ref();
        let f = |g: fn(&RunResult) -> f64| best.map(g).unwrap_or(0.0);
        ScalingRow {
            validators,
            saturation_bundles_per_s: f(|r| r.delivered_bundles_per_s),
            saturation_offered_per_s: f(|r| r.offered_per_s),
            ratio_to_ceiling: f(|r| r.ratio_to_ceiling),
            p50_ms: f(|r| r.latency_ms.p50),
        }
    }
}

/// `summary.json` of `bench --full`: the first row's saturation, the latency run at half of
/// it and the 64 KiB-leg run (all on that row's network), and the scaling table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub validators: usize,
    pub bundles_per_signer: usize,
    pub raw_verify_per_s: f64,
    pub raw_verify_keys: RawVerifyKeys,
    pub ceiling_bundles_per_s: f64,
    /// Delivered rate of the saturation step that kept up ([`ScalingRow`]).
    pub saturation_bundles_per_s: f64,
    /// The rate that step offered.
    pub saturation_offered_per_s: f64,
    /// `saturation_bundles_per_s` ÷ the ceiling.
    pub ratio_to_ceiling: f64,
    /// The latency run's offered rate: half of `saturation_bundles_per_s`.
    pub latency_at_half_offered_per_s: f64,
    pub latency_at_half_ms: Percentiles,
    /// The latency run's `rss_peak_mb` and its scope.
    pub rss_peak_mb_at_half: f64,
    pub rss_peak_scope_at_half: RssScope,
    /// Leg data delivered per second in the 64 KiB-leg run.
    pub large_legs_mb_per_s: f64,
    pub scaling: Vec<ScalingRow>,
}

impl Summary {
    /// From the scaling rows (the first is the network the other runs used), the latency run
    /// and the 64 KiB-leg run.
    pub fn new(
        scaling: Vec<ScalingRow>,
        latency: &RunResult,
        large: &RunResult,
    ) -> eyre::Result<Summary> {
        let first = scaling
            .first()
            .ok_or_else(|| eyre!("a summary needs a saturation row"))?;
        Ok(Summary {
            validators: first.validators,
            bundles_per_signer: latency.bundles_per_signer,
            raw_verify_per_s: latency.raw_verify_per_s,
            raw_verify_keys: latency.raw_verify_keys,
            ceiling_bundles_per_s: latency.ceiling_bundles_per_s,
            saturation_bundles_per_s: first.saturation_bundles_per_s,
            saturation_offered_per_s: first.saturation_offered_per_s,
            ratio_to_ceiling: first.ratio_to_ceiling,
            latency_at_half_offered_per_s: latency.offered_per_s,
            latency_at_half_ms: latency.latency_ms.clone(),
            rss_peak_mb_at_half: latency.rss_peak_mb,
            rss_peak_scope_at_half: latency.rss_peak_scope,
            large_legs_mb_per_s: large.delivered_mb_per_s,
            scaling,
        })
    }
}

/// Ramps the offered rate (×1.5 per step) until a step no longer keeps up, then tries once
/// between the last two rates; returns every step and the sustained one ([`Saturation`]).
pub async fn saturation(
    cluster: &Cluster,
    base: &RunSpec,
    start_rate: f64,
    raw_verify: RawVerify,
    salt: &mut u64,
    progress: Option<&indicatif::ProgressBar>,
) -> eyre::Result<Saturation> {
    let mut rate = start_rate;
    let mut last_kept_up: Option<f64> = None;
    let mut steps = Vec::new();
    loop {
        *salt += 1;
        let spec = RunSpec {
            rate,
            ..base.clone()
        };
        let r = run_once(cluster, &spec, raw_verify, *salt, progress).await?;
        let ok = sustained(&r);
        steps.push(r);
        if !ok || rate > 200_000.0 {
            break;
        }
        last_kept_up = Some(rate);
        rate *= 1.5;
        // Let the network settle (drain any backlog) between steps.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // One more step between the last rate that kept up and the first that did not (×1.22).
    if let Some(low) = last_kept_up {
        tokio::time::sleep(Duration::from_secs(2)).await;
        *salt += 1;
        let spec = RunSpec {
            rate: (low * rate).sqrt(),
            ..base.clone()
        };
        steps.push(run_once(cluster, &spec, raw_verify, *salt, progress).await?);
    }
    Ok(Saturation::from_steps(steps))
}

/// Writes `value` as pretty JSON to `dir/name`.
pub fn write_json<T: Serialize>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
) -> eyre::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(path)
}
