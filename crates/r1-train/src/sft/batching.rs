//! Length bucketing: which examples form each micro-batch.
//!
//! Chosen over packing because the model has no per-document attention reset in its
//! training forward pass: packed documents would attend to each other. Bucketing
//! keeps documents apart and still cuts padding: each epoch shuffles the examples,
//! sorts them by length within windows of `window` micro-batches, cuts the windows
//! into micro-batches and shuffles the micro-batch order. Everything is a function of
//! (seed, epoch), so a resumed run sees exactly the batches it would have seen.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// The micro-batches (indices into `lengths`) of epoch `epoch`.
pub fn epoch_batches(
    lengths: &[usize],
    micro: usize,
    window: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let micro = micro.max(1);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    if window == 0 {
        batches.extend(order.chunks(micro).map(<[usize]>::to_vec));
        return batches;
    }
    for w in order.chunks(micro * window) {
        let mut w = w.to_vec();
        w.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(w.chunks(micro).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Micro-batches in one epoch of `n` examples.
pub fn batches_per_epoch(n: usize, micro: usize) -> usize {
    n.div_ceil(micro.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_once_per_epoch_and_deterministic() {
        let lengths: Vec<usize> = (0..50).map(|i| (i * 37) % 23 + 1).collect();
        let a = epoch_batches(&lengths, 4, 3, 7, 0);
        assert_eq!(a, epoch_batches(&lengths, 4, 3, 7, 0));
        assert_ne!(a, epoch_batches(&lengths, 4, 3, 7, 1));
        let mut all: Vec<usize> = a.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(a.len(), batches_per_epoch(50, 4));
    }

    #[test]
    fn bucketing_reduces_padding() {
        let lengths: Vec<usize> = (0..400).map(|i| (i * 7919) % 300 + 10).collect();
        let pad = |bs: &[Vec<usize>]| -> usize {
            bs.iter()
                .map(|b| {
                    let m = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| m - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let plain = pad(&epoch_batches(&lengths, 8, 0, 1, 0));
        let bucketed = pad(&epoch_batches(&lengths, 8, 16, 1, 0));
        assert!(bucketed * 4 < plain, "{bucketed} vs {plain}");
    }
}
