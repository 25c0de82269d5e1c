//! The statistics bench tables and comparisons print: medians, means and
//! rates with bootstrap intervals, and the Wilcoxon signed-rank test.
//!
//! Intervals are percentile bootstrap intervals: [`RESAMPLES`] resamples of
//! the cases with replacement, drawn by a generator seeded with
//! [`BOOTSTRAP_SEED`], so the same numbers always give the same interval.

use serde::{Deserialize, Serialize};

/// Resamples per bootstrap interval.
pub const RESAMPLES: usize = 2000;
/// The bootstrap's seed (fixed: intervals are reproducible).
pub const BOOTSTRAP_SEED: u64 = 2024;
/// Up to this many non-zero differences the Wilcoxon p-value is exact.
const EXACT_WILCOXON: usize = 60;

/// A statistic with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    /// The 2.5th and 97.5th percentiles of the statistic over the resamples.
    pub ci: [f64; 2],
}

impl Estimate {
    /// `value [low, high]` with `digits` decimals.
    pub fn text(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.value,
            self.ci[0],
            self.ci[1],
            d = digits
        )
    }
}

/// The arithmetic mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The `q` quantile (0 to 1), interpolating between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (low, high) = (at.floor() as usize, at.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (at - low as f64))
}

/// The median (the 0.5 quantile); `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The interquartile range.
pub fn iqr(values: &[f64]) -> Option<f64> {
    Some(quantile(values, 0.75)? - quantile(values, 0.25)?)
}

/// `statistic` of `values` with its bootstrap interval; `None` when empty.
pub fn bootstrap(values: &[f64], statistic: fn(&[f64]) -> Option<f64>) -> Option<Estimate> {
    let value = statistic(values)?;
    let mut rng = fastrand::Rng::with_seed(BOOTSTRAP_SEED);
    let mut sample = vec![0.0; values.len()];
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            for slot in sample.iter_mut() {
                *slot = values[rng.usize(..values.len())];
            }
            statistic(&sample)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    Some(Estimate {
        value,
        ci: [quantile(&stats, 0.025)?, quantile(&stats, 0.975)?],
    })
}

/// The share of `true`s with its bootstrap interval.
pub fn rate(flags: &[bool]) -> Option<Estimate> {
    let values: Vec<f64> = flags.iter().map(|&f| f64::from(u8::from(f))).collect();
    bootstrap(&values, mean)
}

/// The two-sided p-value of the Wilcoxon signed-rank test that the paired
/// differences are centred on zero. Zero differences are dropped (Wilcoxon's
/// own treatment); tied magnitudes get their average rank. Exact (the
/// distribution of the signed rank sum given the ranks) up to
/// [`EXACT_WILCOXON`] non-zero differences, else the normal approximation
/// with the tie and continuity corrections. `None` when every difference is 0.
pub fn wilcoxon(differences: &[f64]) -> Option<f64> {
    let ranks = SignedRanks::of(differences)?;
    Some(if ranks.ranks2.len() <= EXACT_WILCOXON {
        ranks.exact()
    } else {
        ranks.normal()
    })
}

/// The non-zero differences' ranks by magnitude, doubled (so the average
/// ranks of ties stay whole), and the sum of the positive ones.
struct SignedRanks {
    ranks2: Vec<u64>,
    positive2: u64,
    /// The sizes of the groups of tied magnitudes.
    ties: Vec<f64>,
}

impl SignedRanks {
    fn of(differences: &[f64]) -> Option<SignedRanks> {
        let mut nonzero: Vec<f64> = differences.iter().copied().filter(|d| *d != 0.0).collect();
        if nonzero.is_empty() {
            return None;
        }
        nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
        let mut ranks2 = vec![0u64; nonzero.len()];
        let mut ties = Vec::new();
        let mut i = 0;
        while i < nonzero.len() {
            let mut j = i;
            while j + 1 < nonzero.len() && nonzero[j + 1].abs() == nonzero[i].abs() {
                j += 1;
            }
            // 2 × the average of ranks i+1 ..= j+1.
            let doubled = (i + 1 + j + 1) as u64;
            for r in &mut ranks2[i..=j] {
                *r = doubled;
            }
            ties.push((j - i + 1) as f64);
            i = j + 1;
        }
        let positive2 = nonzero
            .iter()
            .zip(&ranks2)
            .filter(|(d, _)| **d > 0.0)
            .map(|(_, r)| r)
            .sum();
        Some(SignedRanks {
            ranks2,
            positive2,
            ties,
        })
    }

    /// The normal approximation, with the tie and continuity corrections.
    fn normal(&self) -> f64 {
        let n = self.ranks2.len() as f64;
        let mean = n * (n + 1.0) / 4.0;
        let tie_term: f64 = self.ties.iter().map(|t| t * t * t - t).sum::<f64>() / 48.0;
        let variance = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term;
        let w = self.positive2 as f64 / 2.0;
        let z = ((w - mean).abs() - 0.5).max(0.0) / variance.sqrt();
        libm::erfc(z / std::f64::consts::SQRT_2).min(1.0)
    }

    /// The exact two-sided p-value: each rank's sign is + or − with even odds.
    fn exact(&self) -> f64 {
        let total2: u64 = self.ranks2.iter().sum();
        let mut ways = vec![0f64; total2 as usize + 1];
        ways[0] = 1.0;
        let mut reach = 0usize;
        for &r in &self.ranks2 {
            let r = r as usize;
            for s in (0..=reach).rev() {
                if ways[s] > 0.0 {
                    ways[s + r] += ways[s];
                }
            }
            reach += r;
        }
        let all: f64 = ways.iter().sum();
        let w2 = self.positive2 as usize;
        let below: f64 = ways[..=w2].iter().sum::<f64>() / all;
        let above: f64 = ways[w2..].iter().sum::<f64>() / all;
        (2.0 * below.min(above)).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_the_iqr_is_their_spread() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&v), Some(2.5));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(iqr(&[1.0, 2.0, 3.0, 4.0, 5.0]), Some(2.0));
        assert_eq!(median(&[]), None);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
    }

    #[test]
    fn a_bootstrap_interval_holds_its_statistic_is_reproducible_and_narrows_with_more_cases() {
        let few: Vec<f64> = (0..20).map(|i| f64::from(i % 7)).collect();
        let many: Vec<f64> = (0..2000).map(|i| f64::from(i % 7)).collect();
        let a = bootstrap(&few, mean).unwrap();
        assert_eq!(a, bootstrap(&few, mean).unwrap(), "the seed is fixed");
        assert!(a.ci[0] <= a.value && a.value <= a.ci[1], "{a:?}");
        let b = bootstrap(&many, mean).unwrap();
        assert!(b.ci[1] - b.ci[0] < (a.ci[1] - a.ci[0]) / 4.0, "{a:?} {b:?}");
        let constant = bootstrap(&[3.0; 10], median).unwrap();
        assert_eq!(constant.ci, [3.0, 3.0]);
        let r = rate(&[true, true, false, true]).unwrap();
        assert_eq!(r.value, 0.75);
    }

    #[test]
    fn wilcoxon_matches_known_values() {
        // All 5 differences positive: exact two-sided p = 2 / 2^5.
        assert!((wilcoxon(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap() - 0.0625).abs() < 1e-12);
        // Symmetric differences: no evidence of a shift.
        assert_eq!(wilcoxon(&[1.0, -1.0, 2.0, -2.0]).unwrap(), 1.0);
        assert_eq!(wilcoxon(&[0.0, 0.0]), None);
        // Ties: ranks 1.5, 1.5, 3, all positive; 8 sign patterns, 1 as extreme each way.
        assert!((wilcoxon(&[1.0, 1.0, 2.0]).unwrap() - 0.25).abs() < 1e-12);
        // The normal approximation (used beyond the exact range) agrees
        // with the exact value on the same differences, ties and all.
        for shift in [0.0, 1.0, 2.5] {
            let d: Vec<f64> = (0..50).map(|i| f64::from(i % 10) - 4.5 + shift).collect();
            let ranks = SignedRanks::of(&d).unwrap();
            let (exact, normal) = (ranks.exact(), ranks.normal());
            assert!((exact - normal).abs() < 0.01, "{shift}: {exact} {normal}");
        }
        let many: Vec<f64> = (0..200).map(|i| f64::from(i % 10) - 3.0).collect();
        assert!(wilcoxon(&many).unwrap() < 1e-6);
    }
}
