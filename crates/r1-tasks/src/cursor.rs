//! [`DataCursor`]: where a run is in its training data, so resume is exact.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::{seed, Example};

/// Iterates the train set epoch by epoch, each epoch in its own shuffled order
/// (a function of `seed` and `epoch` only). Save it with the checkpoint: a
/// restored cursor hands out exactly the batches an uninterrupted run would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// Completed passes over the data.
    pub epoch: u64,
    /// Position inside the current epoch's order.
    pub index: usize,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl DataCursor {
    /// A cursor at the start of epoch 0.
    pub fn new(seed: u64) -> Self {
        Self {
            epoch: 0,
            index: 0,
            seed,
        }
    }

    /// The order of epoch `epoch` over `len` examples.
    pub fn order(&self, epoch: u64, len: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut seed::rng(
            self.seed,
            seed::EPOCH_BASE.wrapping_add(epoch),
        ));
        order
    }

    /// The indices of the next `n` examples of a data set of `len`, moving into
    /// the next epoch (and its new order) when this one runs out. Empty data
    /// gives an empty batch.
    pub fn next_indices(&mut self, len: usize, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        if len == 0 {
            return out;
        }
        let mut order = self.order(self.epoch, len);
        while out.len() < n {
            if self.index >= len {
                // Also covers a cursor saved against a larger data set.
                self.epoch += 1;
                self.index = 0;
                order = self.order(self.epoch, len);
            }
            out.push(order[self.index]);
            self.index += 1;
        }
        out
    }

    /// The next `n` examples of `data` (see [`DataCursor::next_indices`]).
    pub fn next_batch<'a>(&mut self, data: &'a [Example], n: usize) -> Vec<&'a Example> {
        self.next_indices(data.len(), n)
            .into_iter()
            .map(|i| &data[i])
            .collect()
    }
}
