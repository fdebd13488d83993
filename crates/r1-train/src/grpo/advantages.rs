//! Group-relative advantages: `A_i = (r_i − mean(group)) / (std + 1e-4)`, with the std
//! taken over the group, the whole batch, or not at all. Std is Bessel-corrected (n − 1),
//! as in TRL.

use super::config::ScaleRewards;

pub const STD_EPS: f64 = 1e-4;

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// Bessel-corrected standard deviation (0 for fewer than two values).
pub fn std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Advantages for rewards laid out group after group (`group` completions per prompt).
pub fn advantages(rewards: &[f64], group: usize, scale: ScaleRewards) -> Vec<f64> {
    let batch_std = std(rewards);
    rewards
        .chunks(group)
        .flat_map(|g| {
            let m = mean(g);
            let s = match scale {
                ScaleRewards::Group => std(g),
                ScaleRewards::Batch => batch_std,
                ScaleRewards::None => 0.0,
            };
            g.iter().map(move |r| match scale {
                ScaleRewards::None => r - m,
                _ => (r - m) / (s + STD_EPS),
            })
        })
        .collect()
}

/// Indices of the groups whose rewards are not all equal (they carry signal).
pub fn informative_groups(rewards: &[f64], group: usize) -> Vec<usize> {
    rewards
        .chunks(group)
        .enumerate()
        .filter(|(_, g)| std(g) > 0.0)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_scaling_by_hand() {
        // Group 1: [1, 0, 0, 1]: mean 0.5, Bessel std sqrt(1/3) = 0.57735.
        // Group 2: all equal → advantages 0.
        let a = advantages(
            &[1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0],
            4,
            ScaleRewards::Group,
        );
        let s = (1.0f64 / 3.0).sqrt() + 1e-4;
        let want = [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0.0, 0.0, 0.0, 0.0];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
    }

    #[test]
    fn batch_and_no_scaling_by_hand() {
        let r = [1.0, 0.0, 3.0, 3.0];
        // Batch: mean per group (0.5, 3), std of all four (Bessel): values 1,0,3,3 → mean 1.75,
        // squared deviations 0.5625+3.0625+1.5625+1.5625 = 6.75, /3 = 2.25, std 1.5.
        let a = advantages(&r, 2, ScaleRewards::Batch);
        let want = [0.5 / 1.5001, -0.5 / 1.5001, 0.0, 0.0];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        assert_eq!(
            advantages(&r, 2, ScaleRewards::None),
            vec![0.5, -0.5, 0.0, 0.0]
        );
    }

    #[test]
    fn groups_without_signal_are_found() {
        assert_eq!(
            informative_groups(&[1.0, 1.0, 0.0, 1.0, 0.5, 0.5], 2),
            vec![1]
        );
    }
}
