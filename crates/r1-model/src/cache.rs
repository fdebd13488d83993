//! Key/value cache for sampling: preallocated per layer and written in place, so a
//! decode step copies one position instead of re-concatenating the whole history.

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Result, Tensor};

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
        let batch = k0.dim(0)?;
        let dropping = !rows.is_empty()
            && rows.windows(2).all(|w| w[0] < w[1])
            && rows.iter().all(|&r| (r as usize) < batch);
        if dropping && k0.device().is_cpu() {
            // Rows only leave: move the survivors up in place, copying the filled
            // positions only. `index_select` copied every row's whole capacity into a
            // fresh cache each time a sequence finished (65–75 ms a call at 31 rows,
            // ~8 % of a GRPO step's generation).
            let op = CompactRows {
                rows,
                len: self.len,
            };
            for (k, v) in self.layers.iter_mut() {
                k.inplace_op1(&op)?;
                v.inplace_op1(&op)?;
                *k = k.narrow(0, 0, rows.len())?;
                *v = v.narrow(0, 0, rows.len())?;
            }
            return Ok(());
        }
        let idx = Tensor::new(rows, k0.device())?;
        for (k, v) in self.layers.iter_mut() {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        Ok(())
    }
}

/// Moves cache row `rows[i]` to row `i` (`rows` increasing), positions `0..len` only.
struct CompactRows<'a> {
    rows: &'a [u32],
    len: usize,
}

impl CompactRows<'_> {
    fn run<T: Copy>(&self, data: &mut [T], dims: &[usize]) {
        let (heads, cap, d) = (dims[1], dims[2], dims[3]);
        let row = heads * cap * d;
        // Row `i` is written only after every row below `rows[i]` was read: sources
        // never sit below their destination, so no survivor is overwritten unread.
        for (i, &src) in self.rows.iter().enumerate() {
            let src = src as usize;
            if src == i {
                continue;
            }
            for h in 0..heads {
                let from = src * row + h * cap * d;
                data.copy_within(from..from + self.len * d, i * row + h * cap * d);
            }
        }
    }
}

impl InplaceOp1 for CompactRows<'_> {
    fn name(&self) -> &'static str {
        "r1-kv-cache-compact-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("KV cache: compacting a strided cache");
        };
        let dims = layout.dims();
        match storage {
            CpuStorage::F32(v) => self.run(&mut v[start..end], dims),
            CpuStorage::F64(v) => self.run(&mut v[start..end], dims),
            CpuStorage::BF16(v) => self.run(&mut v[start..end], dims),
            CpuStorage::F16(v) => self.run(&mut v[start..end], dims),
            _ => candle_core::bail!("KV cache: unexpected dtype"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of 4 rows with 3 filled positions of distinct values.
    fn filled() -> KvCache {
        let dev = Device::Cpu;
        let mut c = KvCache::new(2, 4, 2, 3, 5, DType::F32, &dev).unwrap();
        for layer in 0..2 {
            let vals: Vec<f32> = (0..4 * 2 * 3 * 3)
                .map(|i| (i + 100 * layer) as f32)
                .collect();
            let k = Tensor::from_vec(vals, (4, 2, 3, 3), &dev).unwrap();
            let v = (&k * -1.0).unwrap();
            c.append(layer, &k, &v).unwrap();
        }
        c.advance(3);
        c
    }

    fn filled_part(c: &mut KvCache, layer: usize) -> (Vec<f32>, Vec<f32>) {
        let (k, v) = c.layers[layer].clone();
        let n = c.len();
        let get = |t: Tensor| {
            t.narrow(2, 0, n)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        (get(k), get(v))
    }

    #[test]
    fn dropping_rows_in_place_matches_index_select() {
        for rows in [vec![1u32, 3], vec![0, 2, 3], vec![2], vec![0, 1, 2, 3]] {
            let mut compacted = filled();
            let mut reference = filled();
            let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
            for (k, v) in reference.layers.iter_mut() {
                *k = k.index_select(&idx, 0).unwrap();
                *v = v.index_select(&idx, 0).unwrap();
            }
            compacted.select_rows(&rows).unwrap();
            assert_eq!(compacted.batch_size(), rows.len());
            for layer in 0..2 {
                assert_eq!(
                    filled_part(&mut compacted, layer),
                    filled_part(&mut reference, layer),
                    "rows {rows:?}"
                );
            }
            // The next position lands after the kept ones, in every kept row.
            let new = Tensor::ones((rows.len(), 2, 1, 3), DType::F32, &Device::Cpu).unwrap();
            let (k, _) = compacted.append(0, &new, &new).unwrap();
            let last: Vec<f32> = k
                .narrow(2, 3, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(last.iter().all(|&x| x == 1.0));
        }
    }

    #[test]
    fn fanning_out_rows_repeats_them() {
        let mut c = filled();
        c.select_rows(&[0, 0, 3]).unwrap();
        let (k, _) = filled_part(&mut c, 1);
        let per_row = 2 * 3 * 3;
        assert_eq!(k[..per_row], k[per_row..2 * per_row]);
        assert_eq!(k[2 * per_row], (3 * 2 * 3 * 3 + 100) as f32);
    }
}
