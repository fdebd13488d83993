//! `code` / `code_pass`: run the completion's last code block against the task's
//! tests in the [`crate::sandbox`]. `code` scores the fraction of tests passed,
//! `code_pass` 1 only if all pass.
//!
//! Test formats accepted in `extra` (Python 3):
//! - assert-style, one process per test: `{"tests": ["assert add(1, 2) == 3", …]}`
//!   (MBPP; optional `"test_setup"` code run before each), or HumanEval's
//!   `{"test": "def check(candidate): …", "entry_point": "add"}` (one test);
//! - stdin/stdout (competitive programming): `{"tests": [{"input": "1 2\n",
//!   "output": "3\n"}, …]}` or `{"inputs": [...], "outputs": [...]}` (APPS style).
//!
//! Why the assert harness can't be fooled by the usual tricks: each test runs in a
//! fresh process and sandbox directory; the harness prints a random nonce (given on
//! stdin, never in a file) only after every assert has passed, on a saved copy of
//! stdout, so `exit(0)` before the tests, `os._exit`, or printing "OK" score 0; the
//! functions under test are wrapped so their results must be plain data (built-in
//! types, checked with `type(...) is`, recursively), so an object whose `__eq__`
//! always returns True fails; the harness keeps its own references to built-ins
//! before the candidate's code runs. Limitation: Python code in the same process can
//! in principle inspect the harness's frames; the nonce raises the bar, it is not a
//! proof against a deliberately adversarial program.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::sandbox::{find_python, Limits, SandboxDir};
use crate::{RewardFn, RewardInput, Score};

/// Options for [`Code`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CodeOptions {
    /// Interpreter; `None` finds python3.
    pub python: Option<PathBuf>,
    /// Per-test limits.
    pub limits: Limits,
    /// At most this many tests are run (the rest count as not run, i.e. failed).
    pub max_tests: usize,
    /// Relative/absolute tolerance for numeric tokens in stdout comparisons.
    pub float_tol: f64,
}

impl Default for CodeOptions {
    fn default() -> Self {
        Self {
            python: None,
            limits: Limits::default(),
            max_tests: 100,
            float_tol: 1e-6,
        }
    }
}

/// The code reward; `pass_only` makes it `code_pass`.
pub struct Code {
    pub opts: CodeOptions,
    pub pass_only: bool,
}

/// The last fenced code block (preferring Python-tagged or untagged ones).
pub fn extract_code(completion: &str) -> Option<&str> {
    let region = match completion.rfind("</think>") {
        Some(k) => &completion[k + 8..],
        None => completion,
    };
    let mut best = None;
    let mut rest = region;
    let mut offset = 0;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let nl = after.find('\n')?;
        let lang = after[..nl].trim().to_ascii_lowercase();
        let body = &after[nl + 1..];
        let Some(close) = body.find("```") else { break };
        if matches!(lang.as_str(), "" | "python" | "py" | "python3") {
            best = Some(&body[..close]);
        }
        let consumed = open + 3 + nl + 1 + close + 3;
        offset += consumed;
        rest = &region[offset..];
    }
    best
}

/// One test to run.
enum Test {
    Assert {
        code: String,
        entry: Option<String>,
        call_check: bool,
    },
    Io {
        input: String,
        output: String,
    },
}

fn parse_tests(extra: &serde_json::Value) -> Result<Vec<Test>, String> {
    let setup = extra
        .get("test_setup")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let entry = extra
        .get("entry_point")
        .and_then(|v| v.as_str())
        .map(String::from);
    if let Some(t) = extra.get("test").and_then(|v| v.as_str()) {
        return Ok(vec![Test::Assert {
            code: format!("{setup}\n{t}"),
            call_check: entry.is_some(),
            entry,
        }]);
    }
    if let (Some(ins), Some(outs)) = (
        extra.get("inputs").and_then(|v| v.as_array()),
        extra.get("outputs").and_then(|v| v.as_array()),
    ) {
        return ins
            .iter()
            .zip(outs)
            .map(|(i, o)| {
                Ok(Test::Io {
                    input: json_text(i)?,
                    output: json_text(o)?,
                })
            })
            .collect();
    }
    let tests = extra
        .get("tests")
        .and_then(|v| v.as_array())
        .ok_or("extra has no tests (tests, test+entry_point, or inputs/outputs)")?;
    tests
        .iter()
        .map(|t| match t {
            serde_json::Value::String(s) => Ok(Test::Assert {
                code: format!("{setup}\n{s}"),
                entry: entry.clone(),
                call_check: false,
            }),
            serde_json::Value::Object(o) => Ok(Test::Io {
                input: json_text(o.get("input").ok_or("test without input")?)?,
                output: json_text(o.get("output").ok_or("test without output")?)?,
            }),
            _ => Err("a test must be a string or {input, output}".to_string()),
        })
        .collect()
}

fn json_text(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Array(a) => a
            .iter()
            .map(json_text)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n")),
        serde_json::Value::Null => Err("null test data".into()),
        other => Ok(other.to_string()),
    }
}

/// The assert-style harness (see the module docs for why it is shaped like this).
const HARNESS: &str = r#"
def _r1_main():
    import sys, os, json, types
    _type, _all, _callable, _isfunc, _write, _exit = type, all, callable, types.FunctionType, os.write, os._exit
    _compile, _exec, _dict, _list, _tuple, _set, _fset = compile, exec, dict, list, tuple, set, frozenset
    nonce = sys.stdin.readline().strip()
    out = os.dup(1)
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    src = open(sys.argv[2], encoding="utf-8").read()
    ns = {"__name__": "__main__"}
    plain_types = (int, float, bool, str, bytes, _type(None), complex)
    def plain(v, depth=0):
        t = _type(v)
        if t in plain_types:
            return True
        if depth > 100:
            return False
        if t is _list or t is _tuple or t is _set or t is _fset:
            return _all(plain(x, depth + 1) for x in v)
        if t is _dict:
            return _all(plain(k, depth + 1) and plain(x, depth + 1) for k, x in _dict.items(v))
        return False
    def guard(f):
        def guarded(*a, **k):
            r = f(*a, **k)
            if not plain(r):
                raise TypeError("returned a %s, not plain data" % _type(r).__name__)
            return r
        return guarded
    _exec(_compile(src, "solution.py", "exec"), ns)
    entry = spec.get("entry")
    names = [entry] if entry else [k for k, v in _dict.items(ns) if _type(v) is _isfunc]
    for k in names:
        if k in ns and _callable(ns[k]):
            ns[k] = guard(ns[k])
    tns = _dict(ns)
    _exec(_compile(spec["test"], "test.py", "exec"), tns)
    if spec.get("call_check"):
        tns["check"](ns[entry])
    _write(out, ("\nR1-PASS " + nonce + "\n").encode())
    _exit(0)
_r1_main()
"#;

fn nonce() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut s: String = b.iter().map(|x| format!("{x:02x}")).collect();
    s.push_str(&format!("{:x}", t & 0xffff));
    s
}

/// Output comparison for stdin/stdout tests: line by line, trailing whitespace and
/// trailing blank lines ignored; numeric tokens equal within `tol`.
pub fn outputs_match(got: &str, want: &str, tol: f64) -> bool {
    let norm = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(|l| l.trim_end().to_string()).collect();
        while v.last().is_some_and(|l| l.is_empty()) {
            v.pop();
        }
        v
    };
    let (g, w) = (norm(got), norm(want));
    if g == w {
        return true;
    }
    if g.len() != w.len() {
        return false;
    }
    g.iter().zip(&w).all(|(a, b)| {
        let (ta, tb): (Vec<&str>, Vec<&str>) = (
            a.split_whitespace().collect(),
            b.split_whitespace().collect(),
        );
        ta.len() == tb.len()
            && ta.iter().zip(&tb).all(|(x, y)| {
                x == y
                    || match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(p), Ok(q)) if p.is_finite() && q.is_finite() => {
                            (p - q).abs() <= tol * p.abs().max(q.abs()).max(1.0)
                        }
                        _ => false,
                    }
            })
    })
}

/// Runs one test; `Ok(true)` when it passed.
fn run_test(
    python: &std::path::Path,
    code: &str,
    test: &Test,
    limits: &Limits,
    tol: f64,
) -> std::io::Result<bool> {
    let dir = SandboxDir::new(limits, python)?;
    let sol = dir.write("solution.py", code.as_bytes())?;
    match test {
        Test::Io { input, output } => {
            let sol = sol.to_string_lossy().into_owned();
            let r = dir.run(python, &["-I", &sol], input.as_bytes(), limits)?;
            Ok(r.success() && outputs_match(&String::from_utf8_lossy(&r.stdout), output, tol))
        }
        Test::Assert {
            code: test_code,
            entry,
            call_check,
        } => {
            let spec =
                serde_json::json!({"test": test_code, "entry": entry, "call_check": call_check});
            let spec_path = dir.write("spec.json", spec.to_string().as_bytes())?;
            let harness = dir.write("harness.py", HARNESS.as_bytes())?;
            let n = nonce();
            let args = [
                "-I".to_string(),
                harness.to_string_lossy().into_owned(),
                spec_path.to_string_lossy().into_owned(),
                sol.to_string_lossy().into_owned(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = dir.run(python, &args, format!("{n}\n").as_bytes(), limits)?;
            let out = String::from_utf8_lossy(&r.stdout);
            let last = out
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Ok(r.success() && last.trim() == format!("R1-PASS {n}"))
        }
    }
}

/// Runs `code` against the tests in `extra`: (passed, total) or an error message.
pub fn run_code_tests(
    code: &str,
    extra: &serde_json::Value,
    opts: &CodeOptions,
) -> Result<(usize, usize), String> {
    let tests = parse_tests(extra)?;
    if tests.is_empty() {
        return Err("no tests".into());
    }
    let python = match &opts.python {
        Some(p) => p.clone(),
        None => find_python().ok_or("python3 not found")?,
    };
    let mut passed = 0;
    for t in tests.iter().take(opts.max_tests) {
        match run_test(&python, code, t, &opts.limits, opts.float_tol) {
            Ok(true) => passed += 1,
            Ok(false) => {}
            Err(e) => return Err(format!("sandbox error: {e}")),
        }
    }
    Ok((passed, tests.len()))
}

impl RewardFn for Code {
    fn name(&self) -> &str {
        if self.pass_only {
            "code_pass"
        } else {
            "code"
        }
    }

    fn score(&self, input: &RewardInput) -> Score {
        let Some(code) = extract_code(input.completion) else {
            return Score::new(0.0, "no code block");
        };
        match run_code_tests(code, input.extra, &self.opts) {
            Err(e) => Score::new(0.0, format!("error: {e}")),
            Ok((p, n)) => {
                let v = if self.pass_only {
                    if p == n {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    p as f64 / n as f64
                };
                Score::new(v, format!("{p}/{n} tests passed"))
            }
        }
    }
}
