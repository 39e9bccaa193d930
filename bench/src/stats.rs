//! Statistics that survive noise: warm-up discard, order statistics (min,
//! median, p90, IQR) rather than means, and an interleaved schedule so slow
//! drift on a shared machine hits every contender alike. Pure functions only.

use serde::{Deserialize, Serialize};

/// Order statistics of one contender's samples (warm-up already removed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// Interquartile range (p75 - p25): the spread, insensitive to outliers.
    pub iqr: f64,
}

impl Summary {
    /// `None` when there are no samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            count: sorted.len(),
            min: sorted[0],
            median: percentile_sorted(&sorted, 50.0),
            p90: percentile_sorted(&sorted, 90.0),
            max: sorted[sorted.len() - 1],
            iqr: percentile_sorted(&sorted, 75.0) - percentile_sorted(&sorted, 25.0),
        })
    }
}

/// Percentile `p` (0..=100) of already sorted samples, linearly interpolated
/// between the two closest ranks (the "R-7" definition spreadsheets use).
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Drops the first `warmup` samples (cold caches, first-time page faults).
pub fn discard_warmup(samples: &[f64], warmup: usize) -> &[f64] {
    &samples[warmup.min(samples.len())..]
}

/// The order in which to run `contenders` in each of `rounds` rounds: every
/// round runs each contender once, and from round to round both the first
/// contender and the step between neighbours change. Round `r` starts at
/// contender `r` and walks the ring in steps of the `r`-th number coprime to
/// the count, taken from the largest down and cycling, so no one always
/// runs first (right after the previous round's heaviest) or last, and no
/// one always runs right after the same other contender, whose aftermath
/// (TIME_WAIT sockets, dirty caches, a busy backend) it would otherwise
/// inherit in every round. For a prime count, no contender follows the same
/// other twice in `count - 1` rounds; for two, rounds alternate `[0, 1]`,
/// `[1, 0]`.
pub fn interleaved_schedule(contenders: usize, rounds: usize) -> Vec<Vec<usize>> {
    let n = contenders;
    // Largest first: with ascending steps and rising starts, the last
    // contender (`r - step`) would be the same in every round.
    let steps: Vec<usize> = (1..n.max(2)).rev().filter(|&s| gcd(s, n) == 1).collect();
    (0..rounds)
        .map(|r| {
            let step = steps[r % steps.len()];
            (0..n).map(|i| (r + i * step) % n).collect()
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `flotilla / anchor`, or `None` when either is missing or the anchor is zero.
pub fn ratio(flotilla: Option<f64>, anchor: Option<f64>) -> Option<f64> {
    match (flotilla, anchor) {
        (Some(f), Some(a)) if a != 0.0 && f.is_finite() && a.is_finite() => Some(f / a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.max, 5.0);
        assert!((s.p90 - 4.6).abs() < 1e-9);
        assert!((s.iqr - 2.0).abs() < 1e-9);
    }

    #[test]
    fn summary_of_nothing_is_none() {
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn median_of_even_count_interpolates() {
        let s = Summary::of(&[1.0, 2.0, 3.0, 10.0]).unwrap();
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn warmup_discard_never_panics() {
        assert_eq!(discard_warmup(&[1.0, 2.0, 3.0], 1), &[2.0, 3.0]);
        assert!(discard_warmup(&[1.0], 5).is_empty());
    }

    #[test]
    fn every_round_runs_everyone_once() {
        for n in 0..8 {
            for round in interleaved_schedule(n, 7) {
                let mut r = round.clone();
                r.sort();
                assert_eq!(r, (0..n).collect::<Vec<_>>(), "{n} contenders: {round:?}");
            }
        }
    }

    #[test]
    fn two_contenders_alternate() {
        let s = interleaved_schedule(2, 4);
        assert_eq!(s, vec![vec![0, 1], vec![1, 0], vec![0, 1], vec![1, 0]]);
    }

    #[test]
    fn five_contenders_never_follow_the_same_one_twice_in_four_rounds() {
        let s = interleaved_schedule(5, 4);
        let mut follows = std::collections::HashSet::new();
        for round in &s {
            for pair in round.windows(2) {
                assert!(
                    follows.insert((pair[0], pair[1])),
                    "{pair:?} twice in {s:?}"
                );
            }
        }
        let distinct = |pos: fn(&Vec<usize>) -> usize| {
            s.iter()
                .map(pos)
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(distinct(|r| r[0]), 4, "first in every round: {s:?}");
        assert_eq!(distinct(|r| r[4]), 4, "last in every round: {s:?}");
    }

    #[test]
    fn ratio_handles_missing_and_zero() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}
