//! Log-probabilities of chosen tokens under `softmax(hidden · W_lmᵀ / T)`, computed in
//! chunks of rows so the full `[tokens, vocab]` logits never exist at once — neither in
//! the forward pass nor in the backward pass, which recomputes each chunk's logits.
//! (A 2048 × 49152 f32 logits tensor is 403 MB; autodiff would keep several copies.)

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, D};

/// Rows of logits materialised at a time.
/// 128 rows × 49152 (SmolLM2's vocabulary) f32 is 25 MB: under glibc's largest mmap
/// threshold, so the block is reused from the heap instead of faulted in afresh.
pub const DEFAULT_CHUNK_ROWS: usize = 128;

/// Softmax statistics are accumulated in f32 for half-precision models, else natively.
pub fn compute_dtype(d: candle_core::DType) -> candle_core::DType {
    match d {
        candle_core::DType::F16 | candle_core::DType::BF16 => candle_core::DType::F32,
        other => other,
    }
}

/// Per-row results of the chunked projection.
pub struct TokenStats {
    /// `[n]` log-probability of each target token.
    pub logprobs: Tensor,
    /// `[n]` entropy of each row's distribution, when asked for.
    pub entropy: Option<Tensor>,
}

/// Log-probabilities of `targets` (`[n]` u32) for hidden states `[n, h]`, no gradient.
pub fn token_logprobs_no_grad(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<TokenStats> {
    if crate::kernels::supported(hidden) {
        return Ok(fused_stats(
            hidden,
            lm_head,
            targets,
            temperature,
            with_entropy,
            chunk_rows,
        )?
        .0);
    }
    let hidden = crate::layers::gemm_operand(&hidden.detach())?;
    let w = lm_head.detach();
    let n = hidden.dim(0)?;
    let inv_t = 1.0 / temperature;
    let mut lps = Vec::new();
    let mut ents = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk_rows.min(n - start);
        let h = hidden.narrow(0, start, len)?;
        let tgt = targets.narrow(0, start, len)?.contiguous()?;
        let logits = (h.matmul(&w.t()?)? * inv_t)?.to_dtype(compute_dtype(h.dtype()))?;
        let max = logits.max_keepdim(D::Minus1)?;
        let shifted = logits.broadcast_sub(&max)?;
        let sum_exp = shifted.exp()?.sum_keepdim(D::Minus1)?;
        let lse = sum_exp.log()?; // logsumexp minus max
        let picked = shifted.gather(&tgt.unsqueeze(1)?, 1)?;
        lps.push((picked - &lse)?.squeeze(1)?);
        if with_entropy {
            // H = lse - Σ p·z  (with z the shifted logits)
            let p = candle_nn::ops::softmax_last_dim(&shifted)?;
            let pz = (p * &shifted)?.sum_keepdim(D::Minus1)?;
            ents.push((lse - pz)?.squeeze(1)?);
        }
        start += len;
    }
    Ok(TokenStats {
        logprobs: Tensor::cat(&lps, 0)?,
        entropy: if with_entropy {
            Some(Tensor::cat(&ents, 0)?)
        } else {
            None
        },
    })
}

/// Differentiable log-probabilities of `targets` for hidden states `[n, h]`: the values
/// come from the chunked forward above, and the gradient w.r.t. `hidden` and `lm_head`
/// is computed by [`ChunkedLogprobGrad`] chunk by chunk.
pub fn token_logprobs(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<TokenStats> {
    if crate::kernels::supported(hidden) {
        let (stats, lse) = fused_stats(
            hidden,
            lm_head,
            targets,
            temperature,
            with_entropy,
            chunk_rows,
        )?;
        let op = FusedLogprobGrad {
            targets: targets.to_vec1()?,
            lse,
            inv_temp: 1.0 / temperature,
            chunk_rows,
        };
        let logprobs = hidden.apply_op2(lm_head, op.with_values(&stats.logprobs)?)?;
        return Ok(TokenStats {
            logprobs,
            entropy: stats.entropy,
        });
    }
    let stats = token_logprobs_no_grad(
        hidden,
        lm_head,
        targets,
        temperature,
        with_entropy,
        chunk_rows,
    )?;
    let op = ChunkedLogprobGrad {
        values: stats.logprobs.contiguous()?,
        targets: targets.contiguous()?,
        inv_temp: 1.0 / temperature,
        chunk_rows,
    };
    let logprobs = hidden.apply_op2(lm_head, op)?;
    Ok(TokenStats {
        logprobs,
        entropy: stats.entropy,
    })
}

/// The forward of the log-prob ops: the values were computed by the chunked pass, so
/// the op hands back a copy of their storage (no backend kernel needed).
fn precomputed_values(values: &Tensor) -> Result<(CpuStorage, Shape)> {
    let (storage, layout) = values.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok((s.clone(), layout.shape().clone())),
        _ => candle_core::bail!("log-prob op: values are not on the CPU"),
    }
}

/// Custom op whose forward hands back values already computed (so no backend kernel is
/// needed) and whose backward recomputes each chunk's softmax:
/// `∂logp/∂z = (onehot(target) − p)/T`, then `∂h = ∂z·W` and `∂W = ∂zᵀ·h`.
struct ChunkedLogprobGrad {
    values: Tensor,
    targets: Tensor,
    inv_temp: f64,
    chunk_rows: usize,
}

impl CustomOp2 for ChunkedLogprobGrad {
    fn name(&self) -> &'static str {
        "chunked-lm-head-logprob"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        precomputed_values(&self.values)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let (storage, layout) = self.values.storage_and_layout();
        match &*storage {
            Storage::Cuda(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("chunked logprob: values not on the GPU"),
        }
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let hidden = crate::layers::gemm_operand(&hidden.detach())?;
        let w = w.detach();
        let grad = grad.detach();
        let n = hidden.dim(0)?;
        let mut dw = w.zeros_like()?;
        let mut dh = Vec::new();
        let mut start = 0;
        while start < n {
            let len = self.chunk_rows.min(n - start);
            let h = hidden.narrow(0, start, len)?;
            let tgt = self.targets.narrow(0, start, len)?.contiguous()?;
            let g = grad
                .narrow(0, start, len)?
                .unsqueeze(1)?
                .to_dtype(w.dtype())?; // [c, 1]
            let logits = (h.matmul(&w.t()?)? * self.inv_temp)?;
            let p =
                candle_nn::ops::softmax_last_dim(&logits.to_dtype(compute_dtype(logits.dtype()))?)?
                    .to_dtype(logits.dtype())?;
            // ∂z = (onehot − p)·g/T: the dense part, then g/T added at each row's target.
            let dz = (p.broadcast_mul(&g)? * (-self.inv_temp))?;
            let dz = dz.scatter_add(&tgt.unsqueeze(1)?, &(g * self.inv_temp)?, 1)?;
            dh.push(dz.matmul(&w)?);
            dw = (dw + dz.t()?.matmul(&h)?)?;
            start += len;
        }
        Ok((Some(Tensor::cat(&dh, 0)?), Some(dw)))
    }
}

/// The fused CPU forward: the vocabulary in blocks of columns, one GEMM per block at
/// the full row count and one pass over its logits folding them into each row's
/// running softmax statistics ([`kernels::logprob::accumulate_block`]). The block
/// holds `chunk_rows × vocab` logits, as many as a chunk of rows would. Also returns
/// each row's logsumexp for the backward pass.
fn fused_stats(
    hidden: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    temperature: f64,
    with_entropy: bool,
    chunk_rows: usize,
) -> Result<(TokenStats, Vec<f64>)> {
    use crate::kernels::logprob::{accumulate_block, RowState};
    let (hidden, w) = (hidden.detach(), lm_head.detach());
    let (n, dtype, dev) = (hidden.dim(0)?, hidden.dtype(), hidden.device().clone());
    let vocab = w.dim(0)?;
    let tgt: Vec<u32> = targets.to_vec1()?;
    let mut state = vec![RowState::default(); n];
    if let Some(cols) = (chunk_rows.max(1) * vocab).checked_div(n) {
        let cols = cols.clamp(1, vocab);
        let mut off = 0;
        while off < vocab {
            let len = cols.min(vocab - off);
            let logits = hidden.matmul(&w.narrow(0, off, len)?.t()?)?;
            let inv_t = 1.0 / temperature;
            match dtype {
                candle_core::DType::F32 => {
                    accumulate_block::<f32>(&logits, off, &tgt, inv_t, &mut state)?
                }
                _ => accumulate_block::<f64>(&logits, off, &tgt, inv_t, &mut state)?,
            }
            off += len;
        }
    }
    let to_tensor = |f: fn(&RowState) -> f64| {
        Tensor::from_vec(state.iter().map(f).collect::<Vec<_>>(), n, &dev)?.to_dtype(dtype)
    };
    let stats = TokenStats {
        logprobs: to_tensor(RowState::logprob)?,
        entropy: if with_entropy {
            Some(to_tensor(RowState::entropy)?)
        } else {
            None
        },
    };
    Ok((stats, state.iter().map(RowState::lse).collect()))
}

/// The fused CPU backward of the chosen tokens' log-probabilities. It walks the
/// vocabulary in blocks instead of the rows: with each row's logsumexp saved by the
/// forward pass, a block's softmax needs no other column, so each block of `∂W` is
/// final once computed (no accumulation into a `[vocab, hidden]` buffer) and only
/// `∂h`, `[rows, hidden]`, is summed over blocks.
struct FusedLogprobGrad {
    targets: Vec<u32>,
    lse: Vec<f64>,
    inv_temp: f64,
    chunk_rows: usize,
}

struct FusedLogprobGradOp {
    grad: FusedLogprobGrad,
    values: Tensor,
}

impl FusedLogprobGrad {
    fn with_values(self, values: &Tensor) -> Result<FusedLogprobGradOp> {
        Ok(FusedLogprobGradOp {
            grad: self,
            values: values.contiguous()?,
        })
    }
}

impl CustomOp2 for FusedLogprobGradOp {
    fn name(&self) -> &'static str {
        "r1-fused-lm-head-logprob"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        precomputed_values(&self.values)
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        use crate::kernels::logprob::LogitsToGrad;
        let op = &self.grad;
        let (n, vocab) = (hidden.dim(0)?, w.dim(0)?);
        // A frozen lm_head (LoRA) needs no ∂W: a third of this pass's FLOPs saved.
        let (want_dh, want_dw) = (hidden.track_op(), w.track_op());
        let (hidden, w) = (hidden.detach(), w.detach());
        if n == 0 {
            return Ok((Some(hidden.zeros_like()?), Some(w.zeros_like()?)));
        }
        let g: Vec<f64> = grad.to_dtype(candle_core::DType::F64)?.to_vec1()?;
        // The same logits budget as the forward pass: chunk_rows × vocab elements.
        let cols = (op.chunk_rows * vocab / n).clamp(1, vocab);
        let mut dh: Option<Tensor> = None;
        let mut dw = Vec::with_capacity(vocab.div_ceil(cols));
        let mut off = 0;
        while off < vocab {
            let len = cols.min(vocab - off);
            let w_c = w.narrow(0, off, len)?;
            let dz = hidden.matmul(&w_c.t()?)?;
            dz.inplace_op1(&LogitsToGrad {
                targets: &op.targets,
                grad: &g,
                lse: &op.lse,
                inv_t: op.inv_temp,
                col_offset: off,
            })?;
            if want_dh {
                let part = dz.matmul(&w_c)?;
                dh = Some(match dh {
                    Some(acc) => (acc + part)?,
                    None => part,
                });
            }
            if want_dw {
                dw.push(dz.t()?.matmul(&hidden)?);
            }
            off += len;
        }
        let dw = match want_dw {
            true => Some(Tensor::cat(&dw, 0)?),
            false => None,
        };
        Ok((dh, dw))
    }
}
