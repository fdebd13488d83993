//! Adversarial inputs: each answered false (or correctly) quickly, without a crash.

use std::time::{Duration, Instant};

use r1_rewards::{
    equivalent, extract_answer, extract_reference, verify, EquivOptions, ExtractOptions,
    VerifyOptions,
};

fn quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

fn v(pred: &str, gold: &str) -> bool {
    verify(pred, gold, &VerifyOptions::default()).correct
}

#[test]
fn megabyte_strings() {
    let big = "7".repeat(1 << 20);
    assert!(!quick("1MB number vs 7", || v(&big, "7")));
    let text = "blah ".repeat(200_000) + "\\boxed{42}";
    assert!(quick("1MB text", || v(&text, "42")));
    let latex = "\\frac{1}{2}+".repeat(100_000);
    assert!(!quick("1MB latex", || v(&latex, "1")));
    assert!(quick("1MB self", || equivalent(
        &latex,
        &latex,
        &EquivOptions::default()
    )));
}

#[test]
fn deep_nesting() {
    let braces = format!("\\boxed{{{}1{}}}", "{".repeat(10_000), "}".repeat(10_000));
    assert!(!quick("10k braces", || v(&braces, "1")));
    let parens = format!("\\boxed{{{}1{}}}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(!quick("10k parens", || v(&parens, "1")));
    let fracs = "\\frac{1}{".repeat(5_000) + "2" + &"}".repeat(5_000);
    assert!(!quick("5k fracs", || v(
        &format!("\\boxed{{{fracs}}}"),
        "1"
    )));
    assert!(quick("deep gold", || extract_reference(&braces)).is_err());
    let answers = "<answer>".repeat(10_000) + "5" + &"</answer>".repeat(10_000);
    assert!(quick("nested answer tags", || v(&answers, "5")));
}

#[test]
fn huge_exponents_are_bounded() {
    assert!(!quick("10^10^10 vs +1", || v(
        "\\boxed{10^{10^{10}}}",
        "10^{10^{10}}+1"
    )));
    assert!(quick("10^10^10 vs itself", || v(
        "\\boxed{10^{10^{10}}}",
        "10^{10^{10}}"
    )));
    assert!(!quick("2^2^2^2^2", || v("\\boxed{2^{2^{2^{2^{2}}}}}", "1")));
    assert!(!quick("9^9^9 vs 0", || v("\\boxed{9^{9^{9}}}", "0")));
    assert!(!quick("1e999999", || v("\\boxed{1e999999}", "1")));
    assert!(quick("big factorial", || !v("\\boxed{100000!}", "1")));
    assert!(quick("2^100 exact", || v(
        "\\boxed{2^{100}}",
        "1267650600228229401496703205376"
    )));
    assert!(!quick("near 2^100", || v(
        "\\boxed{2^{100}}",
        "1267650600228229401496703205377"
    )));
    assert!(!quick("x^(10^9) symbolic", || v(
        "\\boxed{x^{1000000000}}",
        "x^{1000000001}"
    )));
}

#[test]
fn unbalanced_and_many_boxes() {
    let many_open = "\\boxed{".repeat(100_000);
    assert!(!quick("100k unbalanced boxes", || v(&many_open, "1")));
    assert!(quick("unbalanced gold", || extract_reference("\\boxed{1")).is_err());
    let many = (0..100_000)
        .map(|i| format!("\\boxed{{{i}}}"))
        .collect::<String>();
    assert!(quick("many boxes, last wins", || v(&many, "99999")));
    assert!(!quick("many boxes, not first", || v(&many, "0")));
}

#[test]
fn nan_inf_and_control_characters() {
    for junk in [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "\\infty",
        "1/0",
        "0/0",
        "\\frac{0}{0}",
    ] {
        assert!(
            !quick(junk, || v(&format!("\\boxed{{{junk}}}"), "5")),
            "{junk} == 5"
        );
    }
    assert!(
        !v("\\boxed{1/0}", "\\frac{2}{0}"),
        "division by zero is not a value"
    );
    assert!(v("\\boxed{4\u{200b}2}", "42"), "zero-width space ignored");
    assert!(v("\\boxed{4\u{0}2}", "42"), "NUL ignored");
    assert!(v("\\boxed{\u{feff}42\u{202e}}", "42"));
    assert!(!v("\\boxed{\u{0}}", "0"));
    let ctl: String = (0u8..32).map(char::from).collect();
    assert!(!quick("control chars", || v(&ctl, "1")));
}

#[test]
fn weird_but_harmless() {
    let o = ExtractOptions::default();
    for s in [
        "",
        " ",
        "\\",
        "{",
        "}",
        "\\boxed",
        "\\boxed{}",
        "<answer></answer>",
        "####",
        "$$",
        "\\frac{",
        "\\sqrt[",
        "\\begin{pmatrix}",
        "((((",
        "]]]",
        "1e",
        "..",
        "--5",
        "^^",
        "__",
    ] {
        let _ = extract_answer(s, &o);
        let _ = extract_reference(s);
        assert!(!v(s, "1"), "{s:?}");
    }
}
