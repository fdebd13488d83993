//! LoRA settings (PEFT's names). With LoRA only the adapters train; the reference model
//! for the KL term is the base with adapters off, so it costs no copy of the weights.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the adapters.
    pub r: usize,
    /// Scale numerator: the update is `alpha / r · B A x`.
    pub lora_alpha: f64,
    /// Dropout on the adapters' input during training.
    pub lora_dropout: f32,
    /// Projections that get adapters: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            target_modules: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        const KNOWN: [&str; 7] = [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ];
        if self.r == 0 {
            anyhow::bail!("config key `lora.r`: must be >= 1");
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            anyhow::bail!("config key `lora.lora_dropout`: must be in [0, 1)");
        }
        if self.target_modules.is_empty() {
            anyhow::bail!("config key `lora.target_modules`: name at least one module");
        }
        for m in &self.target_modules {
            if !KNOWN.contains(&m.as_str()) {
                anyhow::bail!(
                    "config key `lora.target_modules`: unknown module `{m}` (known: {})",
                    KNOWN.join(", ")
                );
            }
        }
        Ok(())
    }
}

/// The seed of one micro-batch's dropout masks: a hash of the run's seed and where the
/// micro-batch sits (step, pass, index, ...), so resumed runs redraw the same masks.
pub fn micro_batch_seed(seed: u64, position: &[u64]) -> u64 {
    use r1_model::layers::splitmix64;
    position
        .iter()
        .fold(splitmix64(seed), |h, &p| splitmix64(h ^ splitmix64(p)))
}
