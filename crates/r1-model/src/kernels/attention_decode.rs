//! Attention for decoding: a few new query positions against the KV cache, computed
//! directly per (row, head) — scores, masked softmax and the weighted sum of values
//! in one pass. The GEMM route ran two tiny matrix products per row and KV group
//! (192 GEMM calls per layer at batch 32, each waking the thread pool), which took
//! more time in synchronisation than in arithmetic. Inference only (no backward).

use super::cpu::{for_each_chunk, lane_dot, lane_max, lane_sum, wide, with_data, Real};
use super::logprob::flush_subnormal;
use candle_core::{bail, Result, Storage, Tensor};

/// Largest number of new positions this kernel is used for (prefill uses GEMMs).
pub const MAX_QUERIES: usize = 8;

/// `softmax(scale · q·kᵀ + mask) · v` for `q` `[b, heads, t, d]`, `k`/`v`
/// `[b, kv_heads, s, d]` (any strides with contiguous rows, e.g. views of the KV cache)
/// and an additive mask `[b or 1, 1, t, s]`. Returns `[b, heads, t, d]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (b, nh, t, d) = q.dims4()?;
    let (kb, nkv, s, kd) = k.dims4()?;
    if kb != b || kd != d || v.dims() != k.dims() || nkv == 0 || nh % nkv != 0 {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if let Some(m) = mask {
        let (mb, _, mt, ms) = m.dims4()?;
        if (mb != b && mb != 1) || mt != t || ms != s {
            bail!(
                "attention: mask {:?} does not fit scores [{b}, {nh}, {t}, {s}]",
                m.dims()
            );
        }
    }
    fn run<T: Real>(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        scale: f64,
    ) -> Result<Tensor> {
        let (b, nh, t, d) = q.dims4()?;
        let (_, nkv, s, _) = k.dims4()?;
        let rep = nh / nkv;
        let scale = T::from(scale).unwrap();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (Storage::Cpu(ks), Storage::Cpu(vs)) = (&*ks, &*vs) else {
            bail!("attention: tensors are not on the CPU")
        };
        let (kall, vall) = (ks.as_slice::<T>()?, vs.as_slice::<T>()?);
        let (kst, vst) = (kl.stride(), vl.stride());
        if kst[3] != 1 || vst[3] != 1 {
            bail!("attention: key/value rows must be contiguous");
        }
        let (ko, vo) = (kl.start_offset(), vl.start_offset());
        let mut out = vec![T::zero(); b * nh * t * d];
        let mask_data = match mask {
            Some(m) => Some((m.contiguous()?.flatten_all()?.to_vec1::<T>()?, m.dim(0)?)),
            None => None,
        };
        with_data::<T, _>(q, |qs| {
            // Multiply-adds: q·k and p·v over every key, per (row, head, query).
            let work = b * nh * t * s * d * 2;
            // One task per (row, KV group): the group's `rep` query heads share each
            // key and value row, which is loaded once for all of them.
            let rows = rep * t;
            for_each_chunk(&mut out, rows * d, 1, work, |bg, o| {
                wide(
                    #[inline(always)]
                    || {
                        let (bi, g) = (bg / nkv, bg % nkv);
                        let kbase = ko + bi * kst[0] + g * kst[1];
                        let vbase = vo + bi * vst[0] + g * vst[1];
                        // Query rows in output order (head, position), contiguous in q.
                        let qg = &qs[bg * rows * d..][..rows * d];
                        let mut p = vec![T::zero(); rows * s];
                        for j in 0..s {
                            let kr = &kall[kbase + j * kst[2]..][..d];
                            for (qi, qr) in qg.chunks_exact(d).enumerate() {
                                p[qi * s + j] = lane_dot(qr, kr) * scale;
                            }
                        }
                        for (qi, pr) in p.chunks_exact_mut(s).enumerate() {
                            if let Some((m, mb)) = &mask_data {
                                let ti = qi % t;
                                let mrow = if *mb == 1 { ti } else { bi * t + ti };
                                pr.iter_mut()
                                    .zip(&m[mrow * s..(mrow + 1) * s])
                                    .for_each(|(a, &mv)| *a += mv);
                            }
                            let max = lane_max(pr);
                            pr.iter_mut().for_each(|x| *x = (*x - max).fast_exp());
                            let inv = lane_sum(pr).recip();
                            pr.iter_mut().for_each(|x| *x = flush_subnormal(*x * inv));
                        }
                        for j in 0..s {
                            let vr = &vall[vbase + j * vst[2]..][..d];
                            for (qi, orow) in o.chunks_exact_mut(d).enumerate() {
                                let w = p[qi * s + j];
                                if w != T::zero() {
                                    orow.iter_mut().zip(vr).for_each(|(a, &x)| *a += w * x);
                                }
                            }
                        }
                    },
                )
            });
            Ok(())
        })?;
        Tensor::from_vec(out, (b, nh, t, d), q.device())
    }
    match q.dtype() {
        candle_core::DType::F32 => run::<f32>(q, k, v, mask, scale),
        candle_core::DType::F64 => run::<f64>(q, k, v, mask, scale),
        dt => bail!("attention: fused kernel runs on f32 or f64 only, not {dt:?}"),
    }
}
