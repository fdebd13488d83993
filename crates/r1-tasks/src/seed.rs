//! Independent random streams derived from one user seed.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// Stream ids, so train, eval, splits and epochs never share random numbers.
pub(crate) const TRAIN: u64 = 1;
pub(crate) const EVAL: u64 = 2;
pub(crate) const SPLIT: u64 = 3;
pub(crate) const EPOCH_BASE: u64 = 1 << 32;

/// SplitMix64 finaliser: a cheap bijective mixer, so nearby (seed, stream) pairs
/// give unrelated RNG seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG for `stream` under `seed`. `StdRng` is fixed by the workspace's rand
/// version, which is what "deterministic in the seed" promises.
pub(crate) fn rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(mix(seed ^ mix(stream)))
}
