//! Choosing the next token of one sequence from its logits: temperature, top-k, top-p.
//! The log-probability reported is that of the tempered distribution `softmax(z / T)`
//! before top-k/top-p truncation — the same quantity the trainer recomputes, so GRPO's
//! importance ratio is exactly 1 on-policy (TRL and vLLM report the same convention).

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f64,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f64,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    pub max_new_tokens: usize,
    /// End-of-sequence tokens are suppressed until this many tokens exist.
    pub min_new_tokens: usize,
    /// Generation stops once the completion text contains one of these; the text is cut
    /// before it.
    pub stop: Vec<String>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            min_new_tokens: 0,
            stop: vec![],
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// The temperature log-probabilities are reported at (greedy reports T = 1).
    pub fn logprob_temperature(&self) -> f64 {
        if self.temperature > 0.0 {
            self.temperature
        } else {
            1.0
        }
    }
}

/// Samples a token from `logits`; returns it with its log-probability.
pub fn sample_token<R: Rng>(logits: &[f32], p: &SamplingParams, rng: &mut R) -> (u32, f32) {
    let t = p.logprob_temperature() as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // log Σ exp((z - max)/T), accumulated in f64 for a stable sum over 50k+ terms.
    let sum: f64 = logits.iter().map(|&z| (((z - max) / t) as f64).exp()).sum();
    let lse = sum.ln() as f32;
    let logprob = |i: usize| (logits[i] - max) / t - lse;
    if p.temperature <= 0.0 {
        let best = argmax(logits);
        return (best as u32, logprob(best));
    }
    let prob = |i: usize| (((logits[i] - max) / t) as f64).exp();
    let filtered = p.top_k > 0 || p.top_p < 1.0;
    let tok = if !filtered {
        let mut u = rng.gen::<f64>() * sum;
        let mut chosen = logits.len() - 1;
        for i in 0..logits.len() {
            u -= prob(i);
            if u <= 0.0 {
                chosen = i;
                break;
            }
        }
        chosen
    } else {
        let cands = nucleus(logits, p, &prob, sum);
        let total: f64 = cands.iter().map(|&i| prob(i)).sum();
        let mut u = rng.gen::<f64>() * total;
        let mut chosen = *cands.last().expect("nucleus is never empty");
        for &i in &cands {
            u -= prob(i);
            if u <= 0.0 {
                chosen = i;
                break;
            }
        }
        chosen
    };
    (tok as u32, logprob(tok))
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// The candidate tokens after top-k and top-p, most likely first. Avoids sorting the
/// whole vocabulary: partition out the top `k` (or a first guess of 256 for top-p) and
/// sort only those, widening only if their mass does not reach `top_p`.
fn nucleus(
    logits: &[f32],
    p: &SamplingParams,
    prob: &dyn Fn(usize) -> f64,
    sum: f64,
) -> Vec<usize> {
    let n = logits.len();
    let limit = if p.top_k > 0 { p.top_k.min(n) } else { n };
    let mut guess = if p.top_p < 1.0 { limit.min(256) } else { limit };
    loop {
        let mut idx: Vec<usize> = (0..n).collect();
        let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
        if guess < n {
            idx.select_nth_unstable_by(guess - 1, by_logit);
            idx.truncate(guess);
        }
        idx.sort_unstable_by(by_logit);
        if p.top_p >= 1.0 {
            return idx;
        }
        let mut cum = 0.0;
        for (j, &i) in idx.iter().enumerate() {
            cum += prob(i) / sum;
            if cum >= p.top_p {
                idx.truncate(j + 1);
                return idx;
            }
        }
        if guess >= limit {
            return idx;
        }
        guess = (guess * 8).min(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params(t: f64, top_p: f64, top_k: usize) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_p,
            top_k,
            ..Default::default()
        }
    }

    #[test]
    fn greedy_picks_the_argmax_with_its_logprob() {
        let logits = [0.0f32, 3.0, 1.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let (tok, lp) = sample_token(&logits, &params(0.0, 1.0, 0), &mut rng);
        assert_eq!(tok, 1);
        let z: f64 = logits.iter().map(|&x| (x as f64).exp()).sum();
        assert!((lp as f64 - (3.0 - z.ln())).abs() < 1e-6);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_excludes_the_tail() {
        let logits = [0.0f32, 2.0, 1.9, -5.0];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            assert_eq!(sample_token(&logits, &params(1.0, 1.0, 1), &mut rng).0, 1);
            // top-p 0.5 keeps only the two best tokens (1 and 2 carry ~0.86 of the mass).
            let t = sample_token(&logits, &params(1.0, 0.5, 0), &mut rng).0;
            assert!(t == 1 || t == 2, "sampled {t}");
        }
    }

    #[test]
    fn sampling_follows_the_tempered_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 1/4, 3/4 at T = 1
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let n = 20000;
        let ones = (0..n)
            .filter(|_| sample_token(&logits, &params(1.0, 1.0, 0), &mut rng).0 == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.02, "frac {frac}");
        // At T = 2 the odds are sqrt(3): p = 0.634.
        let ones = (0..n)
            .filter(|_| sample_token(&logits, &params(2.0, 1.0, 0), &mut rng).0 == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.634).abs() < 0.02, "frac {frac}");
    }
}
