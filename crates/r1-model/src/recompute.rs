//! Activation checkpointing for training: a decoder block runs as one custom op that
//! keeps only its input. Its forward runs without a graph; its backward recomputes the
//! block with a graph, backpropagates the incoming gradient through it, returns the
//! input's gradient and deposits the block weights' gradients in a [`GradSink`]
//! (a custom op can only return gradients for its tensor arguments). On the CPU the
//! recomputation runs the hand-written block backward of [`crate::block_backward`].
//!
//! Memory for activations drops from every intermediate of every layer (~5 MB per token
//! for SmolLM2-135M) to one hidden state per layer plus one layer's intermediates, for
//! about one extra forward pass of compute.

use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::layers::Mode;
use crate::model::{block_forward, AttnInput, Block};
use candle_core::backprop::GradStore;
use candle_core::{
    CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor, TensorId, Var,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Weight gradients produced inside recomputed blocks, by tensor id.
#[derive(Debug, Clone, Default)]
pub struct GradSink(Arc<Mutex<HashMap<TensorId, Tensor>>>);

impl GradSink {
    pub(crate) fn add(&self, id: TensorId, g: Tensor) -> Result<()> {
        let mut m = self.0.lock().expect("grad sink poisoned");
        let sum = match m.remove(&id) {
            Some(prev) => (prev + g)?,
            None => g,
        };
        m.insert(id, sum);
        Ok(())
    }

    /// Moves the collected gradients into `store` (adding to any already there).
    pub fn drain_into(&self, store: &mut GradStore) -> Result<()> {
        let mut m = self.0.lock().expect("grad sink poisoned");
        for (id, g) in m.drain() {
            let g = match store.get_id(id) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            store.insert_id(id, g);
        }
        Ok(())
    }
}

struct CheckpointedBlock {
    cfg: ModelConfig,
    layer: usize,
    block: Block,
    input: AttnInput,
    sink: GradSink,
    /// Whether the recomputation may run the hand-written block backward.
    fused: bool,
}

fn weights(b: &Block) -> Vec<&Tensor> {
    let mut w = vec![&b.input_norm, &b.post_norm];
    for lin in b.linears() {
        w.push(&lin.weight);
        if let Some(bias) = &lin.bias {
            w.push(bias);
        }
        if let Some(l) = &lin.lora {
            w.push(&l.a);
            w.push(&l.b);
        }
    }
    w
}

/// `b` with every weight detached (no graph recorded when computing with it).
pub(crate) fn detached(b: &Block) -> Block {
    let mut d = b.clone();
    let det = |t: &mut Tensor| *t = t.detach();
    det(&mut d.input_norm);
    det(&mut d.post_norm);
    for lin in [
        &mut d.attn.q,
        &mut d.attn.k,
        &mut d.attn.v,
        &mut d.attn.o,
        &mut d.mlp.gate,
        &mut d.mlp.up,
        &mut d.mlp.down,
    ] {
        det(&mut lin.weight);
        if let Some(bias) = &mut lin.bias {
            det(bias);
        }
        if let Some(l) = &mut lin.lora {
            det(&mut l.a);
            det(&mut l.b);
        }
    }
    d
}

impl CheckpointedBlock {
    fn run(&self, block: &Block, x: &Tensor) -> Result<Tensor> {
        let none: Option<&mut KvCache> = None;
        block_forward(
            &self.cfg,
            self.layer,
            block,
            x,
            &self.input,
            none,
            Mode::Train,
        )
    }
}

// The second argument is an "anchor": one trainable tensor of the block. candle records
// an op in the graph only if an argument is tracked; when the block's input is not (LoRA
// over a frozen embedding), the anchor keeps the recomputed block in the graph.
impl CustomOp2 for CheckpointedBlock {
    fn name(&self) -> &'static str {
        "checkpointed-decoder-block"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_input(s, l, "checkpointed block")?;
        let y = self.run(&detached(&self.block), &x)?;
        cpu_output(&y, "checkpointed block")
    }

    // On the GPU the input's device buffer becomes a tensor again (one device-side copy),
    // the block runs without a graph, and its output's buffer is handed back.
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        // `checkpointed_block` hands the GPU path inputs that start at offset 0, so the
        // cloned buffer's first `elem_count` elements are exactly the input.
        if !l.is_contiguous() || l.start_offset() != 0 {
            candle_core::bail!("checkpointed block: GPU input must be contiguous from offset 0");
        }
        let x = Tensor::from_storage(
            Storage::Cuda(s.try_clone(l)?),
            l.shape().clone(),
            candle_core::op::BackpropOp::none(),
            false,
        );
        let y = compact(self.run(&detached(&self.block), &x)?)?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cuda(c) => Ok((c.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("checkpointed block: output not on the GPU"),
        }
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _anchor: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // On the CPU the recomputed block runs its hand-written backward pass.
        if self.fused && crate::block_backward::fits(&self.block, arg) {
            let dx = crate::block_backward::recompute_backward(
                &self.cfg,
                &self.block,
                arg,
                &self.input,
                &self.sink,
                &grad.detach(),
            )?;
            return Ok((Some(dx), None));
        }
        let x = Var::from_tensor(&arg.detach())?;
        let y = self.run(&self.block, x.as_tensor())?;
        let g = y.mul(&grad.detach())?.sum_all()?.backward()?;
        for w in weights(&self.block) {
            if let Some(gw) = g.get(w) {
                self.sink.add(w.id(), gw.clone())?;
            }
        }
        // The anchor's real gradient is in the sink with the other weights'.
        Ok((g.get(x.as_tensor()).cloned(), None))
    }
}

/// A block op's input: its contiguous CPU storage as a tensor of the layout's shape
/// (a copy; f32/f64).
pub(crate) fn cpu_input(s: &CpuStorage, l: &Layout, op: &str) -> Result<Tensor> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    let dev = candle_core::Device::Cpu;
    match s {
        CpuStorage::F32(v) => Tensor::from_slice(&v[start..end], l.shape(), &dev),
        CpuStorage::F64(v) => Tensor::from_slice(&v[start..end], l.shape(), &dev),
        _ => candle_core::bail!("{op}: f32/f64 only on the CPU"),
    }
}

/// A block op's output: `y`'s elements as a CPU storage (a copy), with its shape.
pub(crate) fn cpu_output(y: &Tensor, op: &str) -> Result<(CpuStorage, Shape)> {
    let y = y.contiguous()?;
    let (storage, layout) = y.storage_and_layout();
    match &*storage {
        Storage::Cpu(c) => Ok((c.clone(), layout.shape().clone())),
        _ => candle_core::bail!("{op}: output not on the CPU"),
    }
}

/// `x` as a contiguous tensor whose elements start at its buffer's first element (a
/// fresh copy only when it is a view into a larger buffer).
fn compact(x: Tensor) -> Result<Tensor> {
    if x.is_contiguous() && x.layout().start_offset() == 0 {
        Ok(x)
    } else {
        x.affine(1.0, 0.0)
    }
}

/// Runs `block` on `x` as a checkpointed op (CPU in f32/f64, or a GPU, and only when the
/// block has a trainable tensor; otherwise it runs normally). With `fused`, the CPU
/// recomputation runs the hand-written block backward.
pub(crate) fn checkpointed_block(
    cfg: &ModelConfig,
    layer: usize,
    block: &Block,
    x: &Tensor,
    input: &AttnInput,
    sink: &GradSink,
    fused: bool,
) -> Result<Tensor> {
    let anchor = weights(block)
        .into_iter()
        .find(|w| w.is_variable())
        .cloned();
    let on_cpu = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
    let on_gpu = cfg!(feature = "cuda") && x.device().is_cuda();
    let Some(anchor) = anchor.filter(|_| on_cpu || on_gpu) else {
        let none: Option<&mut KvCache> = None;
        return block_forward(cfg, layer, block, x, input, none, Mode::Train);
    };
    let op = CheckpointedBlock {
        cfg: cfg.clone(),
        layer,
        block: block.clone(),
        input: input.detached()?,
        sink: sink.clone(),
        fused,
    };
    compact(x.contiguous()?)?.apply_op2(&anchor, op)
}
