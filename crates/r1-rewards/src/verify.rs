//! Math verification of one prediction against one reference: extraction of both,
//! then equivalence. Shared by the `accuracy` and `cosine` rewards and `r1 verify`.

use serde::{Deserialize, Serialize};

use crate::extract::{extract_answer, extract_reference, ExtractOptions, Rule};
use crate::math::{equivalent, EquivOptions};

/// Options for [`verify`] (serde: `extract = {…}`, `equiv = {…}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyOptions {
    pub extract: ExtractOptions,
    pub equiv: EquivOptions,
}

/// The outcome of a verification, with what was extracted for logging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub correct: bool,
    /// The extracted reference answer.
    pub gold: Option<String>,
    pub gold_rule: Option<Rule>,
    /// The extracted predicted answer.
    pub pred: Option<String>,
    pub pred_rule: Option<Rule>,
    /// Set when the reference is unusable: such an item is an error, never a pass.
    pub error: Option<String>,
}

/// Verifies a raw model output (or bare answer) against a reference.
pub fn verify(pred_text: &str, gold_text: &str, opts: &VerifyOptions) -> Verdict {
    let mut v = Verdict {
        correct: false,
        gold: None,
        gold_rule: None,
        pred: None,
        pred_rule: None,
        error: None,
    };
    match extract_reference(gold_text) {
        Ok(g) => {
            v.gold = Some(g.answer);
            v.gold_rule = Some(g.rule);
        }
        Err(e) => {
            v.error = Some(format!("unusable reference: {e}"));
            return v;
        }
    }
    if let Some(p) = extract_answer(pred_text, &opts.extract) {
        v.correct = equivalent(&p.answer, v.gold.as_deref().unwrap_or(""), &opts.equiv);
        v.pred = Some(p.answer);
        v.pred_rule = Some(p.rule);
    }
    v
}
