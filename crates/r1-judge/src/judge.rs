//! The judge reward: one chat-completion request per response, retried with
//! backoff, scored from the reply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use r1_rewards::{RewardFn, RewardInput, Score};
use serde_json::{json, Value};

use crate::config::{JudgeConfig, JudgeMode};
use crate::parse::{final_answer, parse_score};

/// A reward that asks a judge model over an OpenAI-compatible endpoint.
pub struct Judge {
    cfg: JudgeConfig,
    agent: ureq::Agent,
    /// The bearer token, read once from the configured environment variable.
    api_key: Option<String>,
    name: String,
}

impl std::fmt::Debug for Judge {
    // Hand-written so the API key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("cfg", &self.cfg)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why a request failed, and whether trying again may help.
struct Failure {
    msg: String,
    retry: bool,
}

impl Judge {
    /// Builds a judge after [`JudgeConfig::validate`]; reads the API key from
    /// `api_key_env` (an error names the variable, never a value).
    pub fn new(cfg: JudgeConfig) -> Result<Self> {
        cfg.validate()?;
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow!("judge API key: environment variable {var} is not set"))?,
            ),
            None => None,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .build();
        let name = match cfg.mode {
            JudgeMode::Helpfulness => "judge_helpfulness",
            JudgeMode::Harmlessness => "judge_harmlessness",
        }
        .to_string();
        Ok(Self {
            cfg,
            agent,
            api_key,
            name,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JudgeConfig {
        &self.cfg
    }

    /// Checks that the judge answers at all: `GET {base_url}/models`. Any HTTP reply
    /// counts as reachable (some servers have no `/models`); a connection failure or
    /// timeout is an error such as `judge at http://127.0.0.1:9/v1: connection refused`.
    pub fn check(&self) -> Result<()> {
        let url = format!("{}/models", self.cfg.base_url.trim_end_matches('/'));
        match self.authorized(self.agent.get(&url)).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => Ok(()),
            Err(ureq::Error::Transport(t)) => {
                bail!("judge at {}: {}", self.cfg.base_url, transport_reason(&t))
            }
        }
    }

    /// The prompt sent for `input` (`None` when helpfulness finds no final answer).
    pub fn prompt_for(&self, input: &RewardInput) -> Option<String> {
        let response = match self.cfg.mode {
            JudgeMode::Helpfulness => final_answer(input.completion)?,
            JudgeMode::Harmlessness => input.completion,
        };
        // Fill {question} first: a response that contains the text `{question}`
        // must not have the question pasted into it.
        Some(
            self.cfg
                .template()
                .replace("{question}", input.prompt)
                .replace("{response}", response),
        )
    }

    /// Scores one response, or says why it could not.
    pub fn try_score(&self, input: &RewardInput) -> Result<Score> {
        let Some(prompt) = self.prompt_for(input) else {
            return Ok(Score::new(0.0, "no final answer after the reasoning"));
        };
        let reply = self.ask(&prompt)?;
        match parse_score(&reply) {
            Some(v) => Ok(Score::new(
                (v / self.cfg.max_score).clamp(0.0, 1.0),
                format!("judge: {v}/{}", self.cfg.max_score),
            )),
            None => bail!("judge reply has no score: {:?}", short(&reply)),
        }
    }

    /// Scores many responses with at most `concurrency` requests in flight; results
    /// are in input order.
    pub fn score_batch(&self, inputs: &[RewardInput]) -> Vec<Score> {
        let workers = self.cfg.concurrency.min(inputs.len());
        let next = AtomicUsize::new(0);
        let out: Vec<Mutex<Option<Score>>> = inputs.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    *out[i].lock().unwrap() = Some(self.score(input));
                });
            }
        });
        out.into_iter()
            .map(|m| m.into_inner().unwrap().expect("every input was scored"))
            .collect()
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.api_key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        }
    }

    /// Sends the prompt, retrying transient failures, and returns the reply text.
    fn ask(&self, prompt: &str) -> Result<String> {
        let body = json!({
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        });
        let mut wait = Duration::from_millis(self.cfg.backoff_ms);
        let mut tries = 0;
        loop {
            match self.request(&body) {
                Ok(text) => return Ok(text),
                Err(f) if f.retry && tries < self.cfg.retries => {
                    tries += 1;
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(f) => bail!(
                    "judge at {}: {}{}",
                    self.cfg.base_url,
                    f.msg,
                    if tries > 0 {
                        format!(" (after {} tries)", tries + 1)
                    } else {
                        String::new()
                    }
                ),
            }
        }
    }

    fn request(&self, body: &Value) -> Result<String, Failure> {
        let resp = self
            .authorized(self.agent.post(&self.cfg.endpoint()))
            .send_json(body);
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(Failure {
                    msg: format!("HTTP {code}: {}", short(&text)),
                    retry: code == 429 || code >= 500,
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Failure {
                    msg: transport_reason(&t),
                    retry: true,
                })
            }
        };
        let v: Value = resp.into_json().map_err(|e| Failure {
            msg: format!("reply is not JSON: {e}"),
            retry: false,
        })?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failure {
                msg: format!(
                    "reply has no choices[0].message.content: {}",
                    short(&v.to_string())
                ),
                retry: false,
            })
    }
}

impl RewardFn for Judge {
    fn name(&self) -> &str {
        &self.name
    }

    /// A failed judgement scores 0 with the reason (naming the judge's URL), so a
    /// training step goes on; use [`Judge::check`] up front to fail early instead.
    fn score(&self, input: &RewardInput) -> Score {
        self.try_score(input)
            .unwrap_or_else(|e| Score::new(0.0, format!("{e:#}")))
    }
}

/// A short, lower-case reason for a transport failure (`connection refused`,
/// `timed out`, …).
fn transport_reason(t: &ureq::Transport) -> String {
    let full = t.to_string().to_lowercase();
    for known in ["connection refused", "timed out", "dns", "connection reset"] {
        if full.contains(known) {
            return known.to_string();
        }
    }
    full
}

fn short(s: &str) -> String {
    let mut it = s.chars();
    let head: String = it.by_ref().take(200).collect();
    if it.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
