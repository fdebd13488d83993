//! Pure evaluation metrics: the unbiased pass@k estimator, majority voting with
//! equivalence grouping (cons@k), and a 95% confidence interval for pass@1.

use serde::Serialize;

/// The unbiased pass@k estimator for one question with `n` samples of which `c` are
/// correct: `1 - C(n-c, k) / C(n, k)`, the chance that at least one of `k` samples
/// drawn without replacement from the `n` is correct.
///
/// Computed as `1 - prod_{i=n-c+1}^{n} (1 - k/i)` (the ratio of binomials telescopes
/// into that product), which never forms a large binomial and so never overflows.
/// `None` when `k` is 0 or larger than `n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n {
        return None;
    }
    let c = c.min(n);
    if n - c < k {
        // Every k-subset holds a correct sample.
        return Some(1.0);
    }
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Some(1.0 - miss)
}

/// The outcome of a majority vote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vote {
    /// Index (into the voted slice) of the winning group's first member: its answer
    /// is the group's representative.
    pub representative: usize,
    /// How many answers joined the winning group.
    pub votes: usize,
    /// How many distinct groups there were.
    pub groups: usize,
}

/// Majority vote over extracted answers, where answers that `same` says are
/// equivalent vote together (`1/2` and `0.5` are one group for math equivalence).
///
/// - `None` entries (no answer extracted) do not vote; all `None` gives `None`.
/// - Each answer joins the first group (in order of first appearance) whose
///   representative (first member) it is equivalent to; comparing with the
///   representative only keeps grouping deterministic even where equivalence with
///   a tolerance is not transitive.
/// - Ties go to the group seen earliest, so the result never depends on hashing.
pub fn majority_vote<F>(answers: &[Option<&str>], same: F) -> Option<Vote>
where
    F: Fn(&str, &str) -> bool,
{
    // (representative index, votes)
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let Some(a) = a else { continue };
        let found = groups
            .iter_mut()
            .find(|(rep, _)| same(answers[*rep].expect("representatives vote"), a));
        match found {
            Some(g) => g.1 += 1,
            None => groups.push((i, 1)),
        }
    }
    let mut best: Option<(usize, usize)> = None;
    for &(rep, votes) in &groups {
        // Strictly greater: an equal count later on does not displace the earlier group.
        if best.is_none_or(|(_, v)| votes > v) {
            best = Some((rep, votes));
        }
    }
    best.map(|(representative, votes)| Vote {
        representative,
        votes,
        groups: groups.len(),
    })
}

/// A mean with a two-sided 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanCi {
    pub mean: f64,
    /// Half width of the interval (`mean ± half_width`); 0 with fewer than 2 values.
    pub half_width: f64,
    pub low: f64,
    pub high: f64,
}

/// The z value of a two-sided 95% normal interval.
const Z95: f64 = 1.959_963_984_540_054;

/// 95% confidence interval for pass@1 by the normal approximation over questions:
/// the values are per-question mean correctness (each in [0, 1]); the interval is
/// `mean ± 1.96 · s / sqrt(n)` with `s` the sample standard deviation (n - 1).
///
/// Why this one: questions are the independent units (samples of one question are
/// correlated), and per-question means are not Bernoulli, so Wilson does not apply
/// when k > 1. With k = 1 this is the Wald interval, which is too narrow near 0 or 1
/// for small n; the bounds are clipped to [0, 1]. `None` for no values.
pub fn mean_ci95(values: &[f64]) -> Option<MeanCi> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let half_width = if n < 2 {
        0.0
    } else {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Z95 * (var / n as f64).sqrt()
    };
    Some(MeanCi {
        mean,
        half_width,
        low: (mean - half_width).max(0.0),
        high: (mean + half_width).min(1.0),
    })
}

/// The k values pass@k is reported for with `k` samples per question: powers of two
/// above 1 up to `k`, and `k` itself (empty for k = 1: pass@1 is reported apart).
pub fn report_ks(k: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = std::iter::successors(Some(2usize), |x| x.checked_mul(2))
        .take_while(|&x| x <= k)
        .collect();
    if k > 1 && ks.last() != Some(&k) {
        ks.push(k);
    }
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pass_at_k_by_hand() {
        // n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5.
        assert!(close(pass_at_k(4, 1, 2).unwrap(), 0.5));
        // n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7.
        assert!(close(pass_at_k(5, 2, 2).unwrap(), 0.7));
        // n=10, c=3, k=1: 1 - C(7,1)/C(10,1) = 1 - 7/10 = 0.3 (pass@1 = c/n).
        assert!(close(pass_at_k(10, 3, 1).unwrap(), 0.3));
        // n=4, c=0: no correct sample, 0 for any k.
        assert!(close(pass_at_k(4, 0, 4).unwrap(), 0.0));
        // n=4, c=1, k=4: every 4-subset is the whole set, which holds the correct one.
        assert!(close(pass_at_k(4, 1, 4).unwrap(), 1.0));
        // n=6, c=2, k=3: 1 - C(4,3)/C(6,3) = 1 - 4/20 = 0.8.
        assert!(close(pass_at_k(6, 2, 3).unwrap(), 0.8));
        assert_eq!(pass_at_k(3, 1, 4), None);
        assert_eq!(pass_at_k(3, 1, 0), None);
    }

    #[test]
    fn pass_at_k_is_stable_for_large_n() {
        // n=1000, c=1, k=500: 1 - C(999,500)/C(1000,500) = 1 - 500/1000 = 0.5; the
        // binomials themselves are ~1e299 and would overflow a naive computation.
        assert!((pass_at_k(1000, 1, 500).unwrap() - 0.5).abs() < 1e-9);
    }

    fn eq_num(a: &str, b: &str) -> bool {
        // Stand-in for math equivalence in these unit tests: compares as numbers,
        // reading `p/q` as a fraction.
        fn val(s: &str) -> Option<f64> {
            match s.split_once('/') {
                Some((p, q)) => Some(p.trim().parse::<f64>().ok()? / q.trim().parse::<f64>().ok()?),
                None => s.trim().parse().ok(),
            }
        }
        match (val(a), val(b)) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-12,
            _ => a == b,
        }
    }

    #[test]
    fn half_and_point_five_vote_together() {
        // Groups: {1/2, 0.5} (2 votes, first at 0), {3} (1 vote).
        let v = majority_vote(&[Some("1/2"), Some("3"), Some("0.5")], eq_num).unwrap();
        assert_eq!((v.representative, v.votes, v.groups), (0, 2, 2));
    }

    #[test]
    fn ties_go_to_the_earliest_group() {
        // {7}: 2 votes, first at 0; {5}: 2 votes, first at 1 -> 7 wins.
        let v = majority_vote(&[Some("7"), Some("5"), Some("5"), Some("7")], eq_num).unwrap();
        assert_eq!((v.representative, v.votes), (0, 2));
        // Same counts, other order: 5 first -> 5 wins.
        let v = majority_vote(&[Some("5"), Some("7"), Some("7"), Some("5")], eq_num).unwrap();
        assert_eq!(v.representative, 0);
    }

    #[test]
    fn missing_answers_do_not_vote() {
        // Three missing answers would "win" if they voted; {4}: 2 votes, {9}: 1.
        let a = [None, Some("4"), None, Some("9"), None, Some("4.0")];
        let v = majority_vote(&a, eq_num).unwrap();
        assert_eq!((v.representative, v.votes, v.groups), (1, 2, 2));
        assert_eq!(majority_vote(&[None, None], eq_num), None);
        assert_eq!(majority_vote(&[], eq_num), None);
    }

    #[test]
    fn ci_by_hand() {
        // values 1, 0.5, 0, 0.5: mean 0.5; squared deviations 0.25+0+0.25+0 = 0.5;
        // s^2 = 0.5/3 = 0.1667, s = 0.408248; se = s/2 = 0.204124;
        // half = 1.959964 * 0.204124 = 0.400076.
        let ci = mean_ci95(&[1.0, 0.5, 0.0, 0.5]).unwrap();
        assert!(close(ci.mean, 0.5));
        assert!((ci.half_width - 0.400076).abs() < 1e-6, "{ci:?}");
        assert!((ci.low - 0.099924).abs() < 1e-6 && (ci.high - 0.900076).abs() < 1e-6);
        // One question: no spread to estimate.
        let one = mean_ci95(&[0.75]).unwrap();
        assert_eq!((one.mean, one.half_width), (0.75, 0.0));
        // Bounds clip to [0, 1]: values 1, 1, 0 -> mean 2/3, s = 0.57735,
        // half = 1.959964 * 0.57735 / sqrt(3) = 0.653321 -> high 1.3199 clipped to 1.
        let c = mean_ci95(&[1.0, 1.0, 0.0]).unwrap();
        assert!((c.half_width - 0.653321).abs() < 1e-6 && c.high == 1.0);
        assert_eq!(mean_ci95(&[]), None);
    }

    #[test]
    fn reported_ks() {
        assert_eq!(report_ks(1), Vec::<usize>::new());
        assert_eq!(report_ks(4), vec![2, 4]);
        assert_eq!(report_ks(6), vec![2, 4, 6]);
        assert_eq!(report_ks(16), vec![2, 4, 8, 16]);
    }
}
