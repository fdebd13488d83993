//! Procedural tasks: determinism, correct answers, held-out eval.

use std::collections::HashSet;

use r1_tasks::{load_task, Example, TaskSpec};

fn spec(toml: &str) -> TaskSpec {
    TaskSpec::from_toml(toml).unwrap()
}

fn numbers(text: &str) -> Vec<i64> {
    // Unsigned integers in order of appearance.
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push(text[start..i].parse().unwrap());
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn deterministic_in_seed() {
    for task in ["arithmetic", "countdown", "linear"] {
        let s = spec(&format!(
            "task = \"{task}\"\ntrain_size = 50\neval_size = 10"
        ));
        let a = load_task(&s, 7).unwrap();
        let b = load_task(&s, 7).unwrap();
        let c = load_task(&s, 8).unwrap();
        assert_eq!(a, b, "{task}");
        assert_ne!(a.train, c.train, "{task}");
        assert_eq!(a.train.len(), 50);
        assert_eq!(a.eval.len(), 10);
    }
}

#[test]
fn arithmetic_answers_are_correct() {
    let s = spec("task = \"arithmetic\"\ndigits = 3\noperands = 3\nops = [\"+\", \"-\", \"*\"]\ntrain_size = 300\neval_size = 30");
    let data = load_task(&s, 1).unwrap();
    for ex in data.train.iter().chain(&data.eval) {
        let expr = ex
            .question
            .strip_prefix("What is ")
            .unwrap()
            .strip_suffix('?')
            .unwrap();
        let toks: Vec<&str> = expr.split(' ').collect();
        assert_eq!(toks.len(), 5, "{expr}");
        // Sum of products, by hand, independent of the crate's evaluator.
        let n: Vec<i128> = toks.iter().step_by(2).map(|t| t.parse().unwrap()).collect();
        assert!(n.iter().all(|v| (100..=999).contains(v)));
        let (o1, o2) = (toks[1], toks[3]);
        let want = match (o1, o2) {
            (_, "*") => apply(n[0], o1, n[1] * n[2]),
            ("*", _) => apply(n[0] * n[1], o2, n[2]),
            _ => apply(apply(n[0], o1, n[1]), o2, n[2]),
        };
        assert_eq!(ex.answer, want.to_string(), "{expr}");
    }
}

fn apply(a: i128, op: &str, b: i128) -> i128 {
    match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        _ => panic!("op {op}"),
    }
}

#[test]
fn arithmetic_default_question_shape() {
    let data = load_task(&TaskSpec::default(), 3).unwrap();
    let ex = &data.train[0];
    assert!(ex.question.starts_with("What is ") && ex.question.contains(" + "));
    let n = numbers(&ex.question);
    assert_eq!(ex.answer, (n[0] + n[1]).to_string());
    assert_eq!(ex.id, "arithmetic-train-0");
}

#[test]
fn linear_answers_are_correct() {
    let data = load_task(&spec("task = \"linear\"\ntrain_size = 300"), 2).unwrap();
    for ex in data.train.iter().chain(&data.eval) {
        let eq = ex.question.strip_prefix("Solve for x: ").unwrap();
        let eq = eq.split(". Give").next().unwrap();
        let (lhs, rhs) = eq.split_once(" = ").unwrap();
        let c: i64 = rhs.parse().unwrap();
        let x: i64 = ex.answer.parse().unwrap();
        // Substitute x into "ax + b" text and evaluate.
        let (ax, b) = match lhs.split_once(" + ") {
            Some((ax, b)) => (ax, b.parse::<i64>().unwrap()),
            None => match lhs.split_once(" - ") {
                Some((ax, b)) => (ax, -b.parse::<i64>().unwrap()),
                None => (lhs, 0),
            },
        };
        let a: i64 = match ax.strip_suffix('x').unwrap() {
            "" => 1,
            "-" => -1,
            s => s.parse().unwrap(),
        };
        assert_ne!(a, 0);
        assert_eq!(a * x + b, c, "{}", ex.question);
    }
}

/// Every way to combine `vals` with + - * / (exact rationals as num/den pairs).
fn reachable(vals: &[(i64, i64)], target: i64) -> bool {
    if vals.len() == 1 {
        let (n, d) = vals[0];
        return d != 0 && n == target * d;
    }
    for i in 0..vals.len() {
        for j in 0..vals.len() {
            if i == j {
                continue;
            }
            let rest: Vec<(i64, i64)> = (0..vals.len())
                .filter(|&k| k != i && k != j)
                .map(|k| vals[k])
                .collect();
            let ((a, b), (c, d)) = (vals[i], vals[j]);
            let mut cands = vec![
                (a * d + c * b, b * d),
                (a * d - c * b, b * d),
                (a * c, b * d),
            ];
            if c != 0 {
                cands.push((a * d, b * c));
            }
            for v in cands {
                let mut next = rest.clone();
                next.push(v);
                if reachable(&next, target) {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn countdown_targets_are_reachable() {
    let data = load_task(
        &spec("task = \"countdown\"\ncount = 4\ntrain_size = 60\neval_size = 10"),
        5,
    )
    .unwrap();
    for ex in data.train.iter().chain(&data.eval) {
        let nums: Vec<i64> = ex.extra["nums"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let target = ex.extra["target"].as_i64().unwrap();
        assert_eq!(nums.len(), 4);
        assert!(nums.iter().all(|n| (1..=99).contains(n)));
        assert_eq!(ex.answer, target.to_string());
        assert!(ex.question.contains(&format!("equals {target}")));
        let vals: Vec<(i64, i64)> = nums.iter().map(|&n| (n, 1)).collect();
        assert!(reachable(&vals, target), "{nums:?} -> {target}");
    }
}

#[test]
fn eval_is_held_out() {
    // A small question space (1-digit sums: 100 questions) makes overlap likely
    // unless the generator excludes train questions.
    let s = spec("task = \"arithmetic\"\ndigits = 1\ntrain_size = 60\neval_size = 20");
    let data = load_task(&s, 9).unwrap();
    let train: HashSet<&str> = data.train.iter().map(|e| e.question.as_str()).collect();
    let eval: HashSet<&str> = data.eval.iter().map(|e| e.question.as_str()).collect();
    assert_eq!(eval.len(), 20, "eval questions are unique");
    assert!(train.is_disjoint(&eval));
    assert!(data
        .eval
        .iter()
        .all(|e: &Example| e.id.starts_with("arithmetic-eval-")));
}

#[test]
fn exhausted_question_space_errors() {
    let s = spec("task = \"arithmetic\"\ndigits = 1\ntrain_size = 2000\neval_size = 50");
    let err = load_task(&s, 1).unwrap_err().to_string();
    assert!(err.contains("eval questions not in the train set"), "{err}");
}

#[test]
fn spec_errors_name_the_key() {
    let err = TaskSpec::from_toml("task = \"countdown\"\ncuont = 4")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cuont"), "{err}");
    let err = TaskSpec::from_toml("task = \"sudoku\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sudoku"), "{err}");
    let err = TaskSpec::from_toml("digits = 2").unwrap_err().to_string();
    assert!(err.contains("task"), "{err}");
}

#[test]
fn spec_round_trips_through_toml() {
    let s = spec("task = \"countdown\"\ncount = 4\ntrain_size = 10");
    let text = toml::to_string(&s).unwrap();
    assert_eq!(TaskSpec::from_toml(&text).unwrap(), s);
}
