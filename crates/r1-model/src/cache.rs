//! Key/value cache for sampling: preallocated per layer and written in place, so a
//! decode step copies one position instead of re-concatenating the whole history.

use candle_core::{DType, Device, Result, Tensor};

#[derive(Debug, Clone)]
pub struct KvCache {
    /// Per layer: keys and values, `[batch, kv_heads, capacity, head_dim]`.
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub fn new(
        num_layers: usize,
        batch: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(num_layers);
        for _ in 0..num_layers {
            let k = Tensor::zeros((batch, kv_heads, capacity, head_dim), dtype, device)?;
            let v = Tensor::zeros((batch, kv_heads, capacity, head_dim), dtype, device)?;
            layers.push((k, v));
        }
        Ok(Self {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Positions filled so far (the same for every row; padding is masked, not skipped).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn batch_size(&self) -> usize {
        self.layers.first().map(|(k, _)| k.dims()[0]).unwrap_or(0)
    }

    /// Writes `k`/`v` (`[b, kv_heads, t, d]`) for `layer` at the current end and returns
    /// views of everything cached, the new positions included.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if self.len + t > self.capacity {
            candle_core::bail!(
                "KV cache full: {} + {t} positions > capacity {}",
                self.len,
                self.capacity
            );
        }
        let (ck, cv) = &self.layers[layer];
        ck.slice_set(&k.contiguous()?, 2, self.len)?;
        cv.slice_set(&v.contiguous()?, 2, self.len)?;
        let end = self.len + t;
        Ok((ck.narrow(2, 0, end)?, cv.narrow(2, 0, end)?))
    }

    /// Advances the length once every layer has appended `t` positions.
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Keeps only the rows in `rows` (in that order): finished sequences leave the batch
    /// so they stop costing compute.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        let Some((k0, _)) = self.layers.first() else {
            return Ok(());
        };
        let idx = Tensor::new(rows, k0.device())?;
        for (k, v) in self.layers.iter_mut() {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        Ok(())
    }
}
