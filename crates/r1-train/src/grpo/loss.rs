//! GRPO's clipped surrogate with an optional k3 KL penalty, per token:
//!
//! ```text
//! ρ  = exp(logπθ − logπold)
//! L  = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A) + β·KL
//! KL = exp(logπref − logπθ) − (logπref − logπθ) − 1
//! ```
//!
//! then reduced over tokens according to `loss_type` (see [`LossType`]).

use super::config::LossType;
use anyhow::Result;
use candle_core::{DType, Tensor, D};

pub struct LossParams {
    pub loss_type: LossType,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    pub beta: f64,
    pub max_completion_length: usize,
    /// Completion tokens in the whole generation batch (the `dapo` normaliser).
    pub num_items_in_batch: f64,
    /// Micro-batches summed per optimizer step: per-micro-batch means are divided by it
    /// so the accumulated gradient is the gradient of the batch mean.
    pub gradient_accumulation_steps: usize,
}

pub struct LossOutput {
    pub loss: Tensor,
    /// Mean k3 KL over tokens (0 without a reference).
    pub kl: f64,
    /// Share of tokens clipped below (ρ < 1−ε, A < 0), above (ρ > 1+ε_high, A > 0), either.
    pub clip_low: f64,
    pub clip_high: f64,
    pub clip_region: f64,
    pub tokens: f64,
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// `logp`, `old_logp`, `ref_logp`, `mask`: `[b, t]`; `advantages`: `[b]`.
pub fn grpo_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    p: &LossParams,
) -> Result<LossOutput> {
    let (b, _t) = logp.dims2()?;
    let adv = advantages.to_dtype(logp.dtype())?.unsqueeze(1)?;
    let ratio = (logp - old_logp)?.exp()?;
    let clipped = ratio.clamp(1.0 - p.epsilon_low, 1.0 + p.epsilon_high)?;
    let surrogate = ratio
        .broadcast_mul(&adv)?
        .minimum(&clipped.broadcast_mul(&adv)?)?;
    let mut per_token = surrogate.neg()?;
    let mut kl_mean = 0.0;
    let tokens = scalar(&mask.sum_all()?)?;
    if let (Some(r), true) = (ref_logp, p.beta > 0.0) {
        let d = (r - logp)?;
        let kl = ((d.exp()? - &d)? - 1.0)?;
        kl_mean = scalar(&(kl.detach() * mask)?.sum_all()?)? / tokens.max(1.0);
        per_token = (per_token + (kl * p.beta)?)?;
    }
    let masked = (per_token * mask)?;
    let ga = p.gradient_accumulation_steps.max(1) as f64;
    let loss = match p.loss_type {
        LossType::Grpo => {
            let per_seq = masked
                .sum(D::Minus1)?
                .div(&mask.sum(D::Minus1)?.clamp(1.0, f64::INFINITY)?)?;
            (per_seq.mean_all()? / ga)?
        }
        LossType::Bnpo => (masked.sum_all()? / (tokens.max(1.0) * ga))?,
        LossType::DrGrpo => (masked.sum_all()? / ((b * p.max_completion_length) as f64 * ga))?,
        LossType::Dapo => (masked.sum_all()? / p.num_items_in_batch.max(1.0))?,
    };
    // Clip statistics on detached values.
    let r = ratio.detach();
    let neg_adv = adv.lt(0.0)?.to_dtype(DType::F32)?;
    let pos_adv = adv.gt(0.0)?.to_dtype(DType::F32)?;
    let m32 = mask.to_dtype(DType::F32)?;
    let low = r
        .lt(1.0 - p.epsilon_low)?
        .to_dtype(DType::F32)?
        .broadcast_mul(&neg_adv)?;
    let high = r
        .gt(1.0 + p.epsilon_high)?
        .to_dtype(DType::F32)?
        .broadcast_mul(&pos_adv)?;
    let share =
        |x: &Tensor| -> Result<f64> { Ok(scalar(&(x * &m32)?.sum_all()?)? / tokens.max(1.0)) };
    let clip_low = share(&low)?;
    let clip_high = share(&high)?;
    Ok(LossOutput {
        loss,
        kl: kl_mean,
        clip_low,
        clip_high,
        clip_region: clip_low + clip_high,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const D: Device = Device::Cpu;

    fn params(loss_type: LossType, eh: f64, beta: f64) -> LossParams {
        LossParams {
            loss_type,
            epsilon_low: 0.2,
            epsilon_high: eh,
            beta,
            max_completion_length: 4,
            num_items_in_batch: 10.0,
            gradient_accumulation_steps: 1,
        }
    }

    /// Two sequences of 3 and 2 real tokens. Ratios chosen to hit every branch:
    /// seq 0 (A = +1): ρ = 1.5 (above 1 + ε_high), 1, 0.5 (below 1 − ε, but A > 0: unclipped)
    /// seq 1 (A = −2): ρ = 0.5 (below 1 − ε, clipped), 1.3.
    fn batch() -> (Var, Tensor, Tensor, Tensor) {
        let ratios = [[1.5f64, 1.0, 0.5, 1.0], [0.5, 1.3, 1.0, 1.0]];
        let old = [[-1.0f64, -2.0, -0.5, 0.0], [-1.5, -0.7, 0.0, 0.0]];
        let logp: Vec<Vec<f64>> = (0..2)
            .map(|i| (0..4).map(|j| old[i][j] + ratios[i][j].ln()).collect())
            .collect();
        let logp = Var::new(logp, &D).unwrap();
        let old = Tensor::new(&old, &D).unwrap();
        let adv = Tensor::new(&[1.0f64, -2.0], &D).unwrap();
        let mask = Tensor::new(&[[1.0f64, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], &D).unwrap();
        (logp, old, adv, mask)
    }

    // Per-token losses by hand, ε_low = ε_high = 0.2:
    // seq 0, A=+1: min(1.5, 1.2) = 1.2 → −1.2;  min(1,1) → −1;  min(0.5, 0.8) = 0.5 → −0.5
    // seq 1, A=−2: min(−1, −1.6) = −1.6 → 1.6;  min(−2.6, −2.4) = −2.6 → 2.6
    const SEQ0: [f64; 3] = [-1.2, -1.0, -0.5];
    const SEQ1: [f64; 2] = [1.6, 2.6];

    fn loss_value(lt: LossType, eh: f64) -> f64 {
        let (logp, old, adv, mask) = batch();
        let out = grpo_loss(
            logp.as_tensor(),
            &old,
            None,
            &adv,
            &mask,
            &params(lt, eh, 0.0),
        )
        .unwrap();
        out.loss.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn every_loss_type_by_hand() {
        let s0: f64 = SEQ0.iter().sum();
        let s1: f64 = SEQ1.iter().sum();
        let cases = [
            (LossType::Grpo, (s0 / 3.0 + s1 / 2.0) / 2.0),
            (LossType::Bnpo, (s0 + s1) / 5.0),
            (LossType::DrGrpo, (s0 + s1) / (2.0 * 4.0)),
            (LossType::Dapo, (s0 + s1) / 10.0),
        ];
        for (lt, want) in cases {
            let got = loss_value(lt, 0.2);
            assert!((got - want).abs() < 1e-12, "{lt:?}: {got} vs {want}");
        }
    }

    #[test]
    fn clip_higher_lets_positive_advantages_grow_further() {
        // ε_high = 0.6: seq 0's first token is no longer clipped (1.5 < 1.6) → −1.5.
        let want = ((-1.5 - 1.0 - 0.5) + 1.6 + 2.6) / 5.0;
        assert!((loss_value(LossType::Bnpo, 0.6) - want).abs() < 1e-12);
        let (logp, old, adv, mask) = batch();
        let out = grpo_loss(
            logp.as_tensor(),
            &old,
            None,
            &adv,
            &mask,
            &params(LossType::Bnpo, 0.2, 0.0),
        )
        .unwrap();
        // Clipped: seq0 tok0 (high, A>0) and seq1 tok0 (low, A<0) → 1/5 each.
        assert!((out.clip_high - 0.2).abs() < 1e-12 && (out.clip_low - 0.2).abs() < 1e-12);
        assert!((out.clip_region - 0.4).abs() < 1e-12);
    }

    #[test]
    fn on_policy_ratio_one_gives_minus_mean_advantage() {
        // μ = 1: old = current, ρ = 1 → loss (grpo) = −mean(A) and gradient A per token.
        let (logp, _old, adv, mask) = batch();
        let old = logp.as_tensor().detach();
        let out = grpo_loss(
            logp.as_tensor(),
            &old,
            None,
            &adv,
            &mask,
            &params(LossType::Grpo, 0.2, 0.0),
        )
        .unwrap();
        assert!((out.loss.to_scalar::<f64>().unwrap() - 0.5).abs() < 1e-12); // −(1 − 2)/2
        let g: Vec<Vec<f64>> = out
            .loss
            .backward()
            .unwrap()
            .get(logp.as_tensor())
            .unwrap()
            .to_vec2()
            .unwrap();
        // ∂/∂logp = −A/(len·b) per real token.
        assert!(
            (g[0][0] + 1.0 / 6.0).abs() < 1e-12
                && (g[1][1] - 2.0 / 4.0).abs() < 1e-12
                && g[0][3] == 0.0
        );
    }

    #[test]
    fn kl_penalty_by_hand_and_gradient_check() {
        let (logp, old, adv, mask) = batch();
        let reference = (logp.as_tensor().detach() - 0.3).unwrap(); // d = ref − logp = −0.3
        let p = params(LossType::Bnpo, 0.2, 0.1);
        let out = grpo_loss(logp.as_tensor(), &old, Some(&reference), &adv, &mask, &p).unwrap();
        let kl = (-0.3f64).exp() + 0.3 - 1.0;
        assert!((out.kl - kl).abs() < 1e-12);
        let base: f64 = (SEQ0.iter().sum::<f64>() + SEQ1.iter().sum::<f64>()) / 5.0;
        assert!((out.loss.to_scalar::<f64>().unwrap() - (base + 0.1 * kl)).abs() < 1e-12);
        // Finite differences on every real token (ref held fixed).
        let g: Vec<Vec<f64>> = out
            .loss
            .backward()
            .unwrap()
            .get(logp.as_tensor())
            .unwrap()
            .to_vec2()
            .unwrap();
        let base_lp: Vec<Vec<f64>> = logp.as_tensor().to_vec2().unwrap();
        for (i, j) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] {
            let f = |delta: f64| {
                let mut lp = base_lp.clone();
                lp[i][j] += delta;
                let lp = Tensor::new(lp, &D).unwrap();
                grpo_loss(&lp, &old, Some(&reference), &adv, &mask, &p)
                    .unwrap()
                    .loss
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let num = (f(1e-6) - f(-1e-6)) / 2e-6;
            assert!(
                (num - g[i][j]).abs() < 1e-6,
                "({i},{j}): {num} vs {}",
                g[i][j]
            );
        }
    }

    #[test]
    fn gradient_accumulation_divides_per_micro_batch_means() {
        let (logp, old, adv, mask) = batch();
        let mut p = params(LossType::Grpo, 0.2, 0.0);
        p.gradient_accumulation_steps = 4;
        let out = grpo_loss(logp.as_tensor(), &old, None, &adv, &mask, &p).unwrap();
        let s0: f64 = SEQ0.iter().sum();
        let s1: f64 = SEQ1.iter().sum();
        assert!((out.loss.to_scalar::<f64>().unwrap() - (s0 / 3.0 + s1 / 2.0) / 8.0).abs() < 1e-12);
    }
}
