//! The statistics of the comparison gate (to come: a metric of the hosts already on the new
//! version against those still on the old, judged as Kayenta judges a canary): a two-sided
//! Mann–Whitney U test in its normal approximation, with the tie correction and the
//! continuity correction, and the verdict "significantly worse".
//!
//! Pure: no query, no I/O. Not here: which samples belong to which hosts (the gate's query).

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

    #[test]
    fn the_normal_tail_is_accurate() {
        assert!(close(upper_tail(0.0), 0.5));
        assert!(close(upper_tail(1.959_963_984_540_054), 0.025));
        assert!(close(upper_tail(3.0), 0.001_349_898_031_630_094_6));
        assert!(close(erfc(-1.0), 2.0 - 0.157_299_207_050_285_13));
    }
}
