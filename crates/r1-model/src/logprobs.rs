//! Log-probabilities of chosen tokens under `softmax(hidden · W_lmᵀ / T)`, computed in
//! chunks of rows so the full `[tokens, vocab]` logits never exist at once — neither in
//! the forward pass nor in the backward pass, which recomputes each chunk's logits.
//! (A 2048 × 49152 f32 logits tensor is 403 MB; autodiff would keep several copies.)

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor, D};

/// Rows of logits materialised at a time.
pub const DEFAULT_CHUNK_ROWS: usize = 256;

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
    let hidden = hidden.detach();
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
        let (storage, layout) = self.values.storage_and_layout();
        match &*storage {
            Storage::Cpu(s) => Ok((s.clone(), layout.shape().clone())),
            _ => candle_core::bail!("chunked logprob: values not on the CPU"),
        }
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
        let hidden = hidden.detach();
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
