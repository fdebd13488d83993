//! Property tests: symmetry, reflexivity, junk vs numbers, formatting variants, and a
//! fuzz-like run of LaTeX-ish random strings through extraction and equivalence
//! (must not panic, must be fast).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use r1_rewards::{equivalent, extract_answer, extract_reference, EquivOptions, ExtractOptions};

fn fuzz_cases() -> u32 {
    std::env::var("R1_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn eq(a: &str, b: &str) -> bool {
    equivalent(a, b, &EquivOptions::default())
}

/// Answers as models write them.
fn answer() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (any::<i32>(), 1..1000i32).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}")),
        (-1000.0..1000.0f64).prop_map(|x| format!("{x:.3}")),
        (1..50u32).prop_map(|n| format!("\\sqrt{{{n}}}")),
        (0..20i32, 0..20i32).prop_map(|(a, b)| format!("({a}, {b})")),
        (0..9i32, 0..9i32).prop_map(|(a, b)| format!("{a}x^2+{b}x")),
        (0..9i32).prop_map(|a| format!("[{a}, \\infty)")),
        (0..9i32, 0..9i32).prop_map(|(a, b)| format!("\\{{{a}, {b}\\}}")),
        "[a-z]{1,6}",
        (1..100i32).prop_map(|a| format!("{a}\\%")),
        (1..100i32).prop_map(|a| format!("{a}\\pi")),
    ]
}

/// A LaTeX-ish alphabet for fuzzing.
fn latexish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "\\boxed{",
        "\\frac",
        "\\sqrt",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "^",
        "_",
        "1",
        "0",
        "9",
        ".",
        ",",
        "-",
        "+",
        "*",
        "/",
        "x",
        "y",
        "e",
        "\\pi",
        "\\infty",
        "\\left(",
        "\\right)",
        "\\{",
        "\\}",
        "=",
        "<",
        ">",
        "\\le",
        "%",
        "\\%",
        "$",
        " ",
        "\\text{",
        "cm",
        "\\begin{pmatrix}",
        "&",
        "\\\\",
        "\\end{pmatrix}",
        "<answer>",
        "</answer>",
        "</think>",
        "####",
        "the answer is",
        "\u{200b}",
        "\u{0}",
        "NaN",
        "inf",
        "!",
        "|",
        "\\cup",
        "\\pm",
        "10^{10^{10}}",
        "\\sqrt[3]",
        "9999999999999999999999",
        "e99999",
        "\\dfrac",
        "\\cdot",
        "°",
        "π",
        "−",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    // 400 cases in CI; `R1_FUZZ_CASES=50000` for a long fuzzing run.
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), .. ProptestConfig::default() })]

    #[test]
    fn symmetric(a in answer(), b in answer()) {
        prop_assert_eq!(eq(&a, &b), eq(&b, &a));
    }

    #[test]
    fn reflexive(a in answer()) {
        prop_assert!(eq(&a, &a), "{} != itself", a);
        let boxed = format!("\\boxed{{{a}}}");
        let ex = extract_answer(&boxed, &ExtractOptions::default()).unwrap();
        prop_assert!(eq(&ex.answer, &a));
    }

    #[test]
    fn junk_never_equals_a_number(n in any::<i64>(), junk in "[a-zA-Z !?#@]{1,20}") {
        prop_assert!(!eq(&junk, &n.to_string()), "{} == {}", junk, n);
    }

    #[test]
    fn formatting_variants_agree(n in 1000u64..10_000_000) {
        let plain = n.to_string();
        let mut grouped = String::new();
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && (plain.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let variants = [
            grouped.clone(),
            format!("{plain}.0"),
            format!("{plain}.00"),
            format!("\\num{{{plain}}}"),
            format!("${plain}$"),
            format!("\\boxed{{{plain}}}"),
            grouped.replace(',', "{,}"),
            format!("\\${grouped}"),
            format!("{plain} dollars"),
        ];
        for v in &variants {
            let ex = extract_answer(v, &ExtractOptions::default()).unwrap();
            prop_assert!(eq(&ex.answer, &plain), "{} vs {}", v, plain);
            prop_assert!(eq(&plain, &ex.answer));
        }
        prop_assert!(!eq(&(n + 1).to_string(), &grouped));
    }

    #[test]
    fn fuzz_extraction_and_equivalence(a in latexish(), b in latexish()) {
        let t = Instant::now();
        let o = ExtractOptions::default();
        let pa = extract_answer(&a, &o).map(|e| e.answer).unwrap_or_default();
        let pb = extract_answer(&b, &o).map(|e| e.answer).unwrap_or_default();
        let _ = extract_reference(&a);
        let r = eq(&pa, &pb);
        prop_assert_eq!(r, eq(&pb, &pa));
        prop_assert!(eq(&a, &a) || a.trim().is_empty());
        prop_assert!(t.elapsed() < Duration::from_millis(500), "slow: {:?} {:?}", a, b);
    }
}
