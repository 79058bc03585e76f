//! The comparison gate of the agent provider: a metric of the hosts already on the new version
//! against the hosts still on the old one, judged as Kayenta judges a canary, by a two-sided
//! Mann–Whitney U test (normal approximation, tie and continuity corrections) and the verdict
//! "significantly worse".
//!
//! The gate's query is PromQL giving one series per host, the host in the label `host` (e.g.
//! `rate(http_errors_total{service="shop"}[1m])`, or `sum by (host) (…)`). It is run as a range
//! query over the part of the window since the batch's analysis began; every point of a host's
//! series is a sample of its group. Hosts are split by the rollout's orders: a host whose order
//! succeeded is on the new version, a host whose order no agent started is on the old one, and
//! a host whose order runs or failed is on neither side; series of other hosts are left out.
//! The gate's `threshold` is the significance (alpha, 0 < alpha < 1, e.g. 0.05) and its
//! `comparator` the healthy direction as for the other gates: `<` or `<=` (lower is healthy) make
//! higher values worse, `>` or `>=` lower ones. The new hosts are significantly worse when
//! p < alpha and their values lie on the worse side (U above its mean for "higher is worse").
//! The value recorded (and charted) is the p-value.
//!
//! When it cannot compare (Kayenta's "no data" is inconclusive, never a pass by itself):
//! - no old host left (the last batch): healthy, "nothing to compare". The earlier batches
//!   were compared while there were old hosts; failing here would roll back every last batch.
//! - no host on the new version, or no sample from one side (the query sees no `host` label,
//!   or not these hosts): failing, as any gate that cannot see counts as failing.
//! - few samples (fewer than [`MIN_SAMPLES`] a side, as at the first evaluation of a window): the
//!   test is made and said to have little power. With so few samples p cannot fall below a usual
//!   alpha, so it is healthy unless the difference is already significant.
//! - every sample the same on both sides: alike, healthy with p = 1.
//!
//! Pure: no query, no I/O (the query is in [`super::gates`]).

use std::collections::BTreeSet;

use vigil_proto::metrics::QuerySeries;

use super::gates::Evaluation;
use crate::store::DeployOrderRow;

/// The label naming a series' host.
pub const HOST_LABEL: &str = "host";
/// Below this many samples a side, the detail says that the test has little power.
pub const MIN_SAMPLES: usize = 5;

/// The hosts of a rollout on its new version and those still on the old.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostVersions {
    pub new: BTreeSet<String>,
    pub old: BTreeSet<String>,
}

/// The hosts' versions from a rollout's orders: succeeded is new, not started (waiting,
/// pending, or cancelled before any agent took it) is old, anything else (running, failed,
/// refused) neither.
pub fn host_versions(orders: &[DeployOrderRow]) -> HostVersions {
    let mut versions = HostVersions::default();
    for order in orders {
        if order.state == "succeeded" {
            versions.new.insert(order.host.clone());
        } else if order.started_at_millis.is_none()
            && ["waiting", "pending", "cancelled"].contains(&order.state.as_str())
        {
            versions.old.insert(order.host.clone());
        }
    }
    versions
}

/// The samples of each side, and the hosts each side's samples came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub new: Vec<f64>,
    pub old: Vec<f64>,
    pub new_hosts: BTreeSet<String>,
    pub old_hosts: BTreeSet<String>,
}

/// Splits a range query's series by their `host` label; points without a value or NaN, and
/// series of hosts on neither side, are left out.
pub fn split(series: &[QuerySeries], hosts: &HostVersions) -> Split {
    let mut split = Split::default();
    for one in series {
        let Some(host) = one.labels.get(HOST_LABEL) else { continue };
        let (samples, seen) = if hosts.new.contains(host) {
            (&mut split.new, &mut split.new_hosts)
        } else if hosts.old.contains(host) {
            (&mut split.old, &mut split.old_hosts)
        } else {
            continue;
        };
        let before = samples.len();
        samples.extend(one.points.iter().filter_map(|(_, value)| *value).filter(|value| !value.is_nan()));
        if samples.len() > before {
            seen.insert(host.clone());
        }
    }
    split
}

/// The gate's verdict on a split (the detail without the gate's name).
pub fn verdict(split: &Split, hosts: &HostVersions, alpha: f64, higher_is_worse: bool) -> Evaluation {
    let failing = |detail: String| Evaluation { value: None, healthy: false, detail: format!("{detail}: failing") };
    if hosts.new.is_empty() {
        return failing("no host of the rollout is on the new version yet, nothing to compare".to_owned());
    }
    if hosts.old.is_empty() {
        return Evaluation {
            value: None,
            healthy: true,
            detail: format!(
                "nothing to compare: every host ({}) is on the new version (the earlier batches were compared): healthy",
                list(&hosts.new)
            ),
        };
    }
    for (side, samples, expected) in [("new", &split.new, &hosts.new), ("old", &split.old, &hosts.old)] {
        if samples.is_empty() {
            return failing(format!(
                "no samples of the hosts on the {side} version ({}): the query must give one series per host with \
                 the label {HOST_LABEL:?}",
                list(expected)
            ));
        }
    }
    let counts = format!(
        "{} samples of {} (new) against {} of {} (old)",
        split.new.len(),
        list(&split.new_hosts),
        split.old.len(),
        list(&split.old_hosts)
    );
    let few = if split.new.len() < MIN_SAMPLES || split.old.len() < MIN_SAMPLES {
        format!("; few samples (fewer than {MIN_SAMPLES} a side), so the test has little power")
    } else {
        String::new()
    };
    let Some((worse, test)) = significantly_worse(&split.new, &split.old, alpha, higher_is_worse) else {
        return Evaluation {
            value: Some(1.0),
            healthy: true,
            detail: format!("{counts}: every sample is the same, alike (p = 1){few}: healthy"),
        };
    };
    let side = if test.new_is_higher(split.new.len(), split.old.len()) { "higher" } else { "lower" };
    let judged = if worse {
        "the new version is significantly worse: failing".to_owned()
    } else {
        "no significant difference for the worse: healthy".to_owned()
    };
    let detail = format!(
        "{counts}: median {} against {}, the new hosts' values {side}; p = {} (worse when p < {alpha} and {}){few}: \
         {judged}",
        number(median(&split.new)),
        number(median(&split.old)),
        number(test.p_value),
        if higher_is_worse { "higher" } else { "lower" },
    );
    Evaluation { value: Some(test.p_value), healthy: !worse, detail }
}

fn list(hosts: &BTreeSet<String>) -> String {
    hosts.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2.0 }
}

/// Four significant digits, small p-values in scientific notation.
fn number(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-3 { format!("{value:.3e}") } else { format!("{value:.4}") }
}

/// The outcome of a test of `new` against `old`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the new sample: how often one of its values exceeds one of the old's (ties half).
    pub u_new: f64,
    /// The standard score of the larger U (continuity-corrected).
    pub z: f64,
    /// The two-sided p-value.
    pub p_value: f64,
}

impl MannWhitney {
    /// Whether the new sample's values are larger than the old's more often than not.
    pub fn new_is_higher(&self, new_count: usize, old_count: usize) -> bool {
        self.u_new > (new_count * old_count) as f64 / 2.0
    }
}

/// The two-sided test of `new` against `old`; `None` when a sample is empty or every value is
/// the same (nothing to compare). NaNs are left out.
pub fn mann_whitney_u(new: &[f64], old: &[f64]) -> Option<MannWhitney> {
    let mut values: Vec<(f64, bool)> = new
        .iter()
        .map(|value| (*value, true))
        .chain(old.iter().map(|value| (*value, false)))
        .filter(|(value, _)| !value.is_nan())
        .collect();
    let new_count = values.iter().filter(|(_, is_new)| *is_new).count();
    let old_count = values.len() - new_count;
    if new_count == 0 || old_count == 0 {
        return None;
    }
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = values.len();
    // Ranks from 1, ties given the mean of their ranks; Σ(t³ - t) over tie groups.
    let mut rank_sum_new = 0.0;
    let mut ties = 0.0;
    let mut start = 0;
    while start < total {
        let mut end = start;
        while end + 1 < total && values[end + 1].0 == values[start].0 {
            end += 1;
        }
        let rank = (start + end) as f64 / 2.0 + 1.0;
        let group = (end - start + 1) as f64;
        ties += group * group * group - group;
        rank_sum_new += rank * values[start..=end].iter().filter(|(_, is_new)| *is_new).count() as f64;
        start = end + 1;
    }
    let (n1, n2, n) = (new_count as f64, old_count as f64, total as f64);
    let u_new = rank_sum_new - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return None;
    }
    let larger = u_new.max(n1 * n2 - u_new);
    let z = ((larger - mean - 0.5) / variance.sqrt()).max(0.0);
    let p_value = (2.0 * upper_tail(z)).min(1.0);
    Some(MannWhitney { u_new, z, p_value })
}

/// Whether `new` is significantly worse than `old` at level `alpha`: different (p < alpha) in
/// the direction that is worse (higher values when `higher_is_worse`, lower otherwise).
pub fn significantly_worse(new: &[f64], old: &[f64], alpha: f64, higher_is_worse: bool) -> Option<(bool, MannWhitney)> {
    let test = mann_whitney_u(new, old)?;
    let higher = test.new_is_higher(new.len(), old.len());
    Some((test.p_value < alpha && higher == higher_is_worse, test))
}

/// P(Z > z) for a standard normal Z: erfc(z / √2) / 2.
fn upper_tail(z: f64) -> f64 {
    erfc(z / std::f64::consts::SQRT_2) / 2.0
}

/// The complementary error function, by its Chebyshev fit (fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let exponent = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * exponent.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-6
    }

    /// SciPy's documented example (`scipy.stats.mannwhitneyu`, males against females,
    /// `method="asymptotic"`): U = 17, p = 0.11134688653314041. By hand: ranks of the first
    /// sample 5 + 7 + 3 + 9 + 8 = 32, U = 32 - 15 = 17, σ = √(5·4·10/12), z = (17 - 10 - ½)/σ.
    #[test]
    fn the_scipy_example_without_ties() {
        let test = mann_whitney_u(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).unwrap();
        assert_eq!(test.u_new, 17.0);
        assert!(close(test.z, 6.5 / (200.0f64 / 12.0).sqrt()), "{test:?}");
        assert!(close(test.p_value, 0.111_346_886_533_140_41), "{test:?}");
        let swapped = mann_whitney_u(&[20.0, 11.0, 17.0, 12.0], &[19.0, 22.0, 16.0, 29.0, 24.0]).unwrap();
        assert_eq!(swapped.u_new, 3.0);
        assert!(close(swapped.p_value, test.p_value), "two-sided: the order does not matter");
    }

    /// With ties: [1, 2, 2, 3] against [2, 3, 3, 4, 5]. Ranks: 1 → 1, the three 2s → 3, the
    /// three 3s → 6, 4 → 8, 5 → 9; the first sample's sum 1 + 3 + 3 + 6 = 13, U = 13 - 10 = 3.
    /// Ties Σ(t³ - t) = 24 + 24 = 48; σ² = 4·5/12 · (10 - 48/72) = 15.5556; z = (17 - 10 - ½)/σ.
    #[test]
    fn ties_share_their_ranks_and_shrink_the_variance() {
        let test = mann_whitney_u(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(test.u_new, 3.0);
        let sigma = (20.0f64 / 12.0 * (10.0 - 48.0 / 72.0)).sqrt();
        assert!(close(test.z, 6.5 / sigma), "{test:?}");
        assert!(close(test.p_value, 0.099_342_247_853_465_27), "{test:?}");
    }

    #[test]
    fn worse_means_different_in_the_bad_direction() {
        let old = [10.0, 11.0, 12.0, 10.5, 11.5, 10.2, 11.8, 10.9, 11.1, 12.2];
        let slower = [20.0, 21.0, 22.5, 19.5, 20.8, 21.7, 22.1, 20.3, 19.9, 21.2];
        let (worse, test) = significantly_worse(&slower, &old, 0.05, true).unwrap();
        assert!(worse && test.p_value < 0.001, "{test:?}");
        let (better_is_not_worse, _) = significantly_worse(&slower, &old, 0.05, false).unwrap();
        assert!(!better_is_not_worse, "higher is better here");
        let (same, test) = significantly_worse(&old, &old, 0.05, true).unwrap();
        assert!(!same && test.p_value > 0.9, "{test:?}");
    }

    #[test]
    fn nothing_to_compare_is_no_verdict() {
        assert_eq!(mann_whitney_u(&[], &[1.0]), None);
        assert_eq!(mann_whitney_u(&[f64::NAN], &[1.0]), None);
        assert_eq!(mann_whitney_u(&[3.0, 3.0], &[3.0, 3.0, 3.0]), None, "every value the same");
    }

    fn order(host: &str, state: &str, started: bool) -> DeployOrderRow {
        DeployOrderRow {
            id: 1,
            rollout_id: 1,
            host: host.to_owned(),
            batch: 0,
            service: "shop".to_owned(),
            environment: "production".to_owned(),
            version: "1.1.0".to_owned(),
            state: state.to_owned(),
            exit_code: None,
            reason: String::new(),
            output: String::new(),
            created_at_millis: 0,
            released_at_millis: None,
            started_at_millis: started.then_some(1),
            finished_at_millis: None,
        }
    }

    fn series(host: Option<&str>, values: &[f64]) -> QuerySeries {
        let mut labels = std::collections::BTreeMap::from([("service".to_owned(), "shop".to_owned())]);
        if let Some(host) = host {
            labels.insert(HOST_LABEL.to_owned(), host.to_owned());
        }
        QuerySeries { labels, points: values.iter().enumerate().map(|(at, value)| (at as f64, Some(*value))).collect() }
    }

    fn hosts(new: &[&str], old: &[&str]) -> HostVersions {
        HostVersions {
            new: new.iter().map(|host| host.to_string()).collect(),
            old: old.iter().map(|host| host.to_string()).collect(),
        }
    }

    #[test]
    fn hosts_are_new_once_their_order_succeeded_and_old_until_one_started() {
        let orders = [
            order("web-1", "succeeded", true),
            order("web-2", "running", true),
            order("web-3", "failed", true),
            order("web-4", "pending", false),
            order("web-5", "waiting", false),
            order("web-6", "cancelled", false),
            order("web-7", "cancelled", true),
            order("web-8", "refused", true),
        ];
        assert_eq!(host_versions(&orders), hosts(&["web-1"], &["web-4", "web-5", "web-6"]));
        assert_eq!(host_versions(&[]), HostVersions::default());
    }

    #[test]
    fn series_split_by_their_host_label_and_others_are_left_out() {
        let mut gap = series(Some("web-3"), &[0.3]);
        gap.points.push((9.0, None));
        gap.points.push((10.0, Some(f64::NAN)));
        let found = split(
            &[
                series(Some("web-1"), &[1.0, 2.0]),
                series(Some("web-2"), &[0.1, 0.2, 0.3]),
                gap,
                series(Some("db-1"), &[50.0]),
                series(None, &[60.0]),
                series(Some("web-4"), &[]),
            ],
            &hosts(&["web-1"], &["web-2", "web-3", "web-4"]),
        );
        assert_eq!(found.new, [1.0, 2.0]);
        assert_eq!(found.old, [0.1, 0.2, 0.3, 0.3]);
        assert_eq!(found.new_hosts, hosts(&["web-1"], &[]).new);
        assert_eq!(found.old_hosts, hosts(&["web-2", "web-3"], &[]).new, "web-4 gave no sample");
    }

    #[test]
    fn the_verdict_fails_only_a_significantly_worse_new_version() {
        let fleet = hosts(&["web-1"], &["web-2", "web-3"]);
        let old: Vec<f64> = (0..20).map(|i| 0.01 + f64::from(i % 4) * 0.001).collect();
        let bad: Vec<f64> = old.iter().map(|value| value + 0.2).collect();
        let worse = verdict(
            &split(&[series(Some("web-1"), &bad), series(Some("web-2"), &old), series(Some("web-3"), &old)], &fleet),
            &fleet,
            0.05,
            true,
        );
        assert!(!worse.healthy && worse.value.is_some_and(|p| p < 1e-6), "{worse:?}");
        assert!(worse.detail.contains("20 samples of web-1 (new) against 40 of web-2, web-3 (old)"), "{worse:?}");
        assert!(worse.detail.ends_with("significantly worse: failing"), "{worse:?}");
        // Higher is healthy (`>`): the same values are better, not worse.
        let better =
            verdict(&split(&[series(Some("web-1"), &bad), series(Some("web-2"), &old)], &fleet), &fleet, 0.05, false);
        assert!(better.healthy && better.value.is_some_and(|p| p < 1e-6), "{better:?}");
        let alike =
            verdict(&split(&[series(Some("web-1"), &old), series(Some("web-2"), &old)], &fleet), &fleet, 0.05, true);
        assert!(alike.healthy && alike.value.is_some_and(|p| p > 0.9), "{alike:?}");
        let flat = verdict(
            &split(&[series(Some("web-1"), &[0.0; 5]), series(Some("web-3"), &[0.0; 9])], &fleet),
            &fleet,
            0.05,
            true,
        );
        assert_eq!((flat.healthy, flat.value), (true, Some(1.0)), "{flat:?}");
        let few = verdict(
            &split(&[series(Some("web-1"), &[9.0, 9.5]), series(Some("web-2"), &[0.1, 0.2])], &fleet),
            &fleet,
            0.05,
            true,
        );
        assert!(few.healthy && few.detail.contains("little power"), "{few:?}");
    }

    #[test]
    fn no_old_host_left_passes_and_a_blind_side_fails() {
        let last = hosts(&["web-1", "web-2", "web-3"], &[]);
        let nothing = verdict(&split(&[series(Some("web-1"), &[1.0])], &last), &last, 0.05, true);
        assert!(nothing.healthy && nothing.value.is_none() && nothing.detail.starts_with("nothing to compare"));
        let none_new = hosts(&[], &["web-1"]);
        assert!(!verdict(&Split::default(), &none_new, 0.05, true).healthy);
        let fleet = hosts(&["web-1"], &["web-2"]);
        let unlabelled = verdict(&split(&[series(None, &[1.0, 2.0])], &fleet), &fleet, 0.05, true);
        assert!(
            !unlabelled.healthy && unlabelled.detail.contains("no samples of the hosts on the new version (web-1)")
        );
        let no_old = verdict(&split(&[series(Some("web-1"), &[1.0])], &fleet), &fleet, 0.05, true);
        assert!(!no_old.healthy && no_old.detail.contains("old version (web-2)"), "{no_old:?}");
    }

    #[test]
    fn the_normal_tail_is_accurate() {
        assert!(close(upper_tail(0.0), 0.5));
        assert!(close(upper_tail(1.959_963_984_540_054), 0.025));
        assert!(close(upper_tail(3.0), 0.001_349_898_031_630_094_6));
        assert!(close(erfc(-1.0), 2.0 - 0.157_299_207_050_285_13));
    }
}
