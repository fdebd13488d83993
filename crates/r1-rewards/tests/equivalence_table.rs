//! The large equivalence table: `tests/data/equivalence.tsv`, one case a line
//! (`expected<TAB>gold<TAB>pred`). The gold goes through `extract_reference`, the
//! prediction through `extract_answer`, as in training. All failures are reported at
//! once, so a regression shows its whole extent.

use r1_rewards::{equivalent, extract_answer, extract_reference, EquivOptions, ExtractOptions};

/// Lines may write a GSM8K solution's newline as a literal `\n` before `####`.
fn unescape(s: &str) -> String {
    s.replace("\\n####", "\n####")
}

#[test]
fn equivalence_table() {
    let data = include_str!("data/equivalence.tsv");
    let eq = EquivOptions::default();
    let ex = ExtractOptions::default();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (n, line) in data.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(
            cols.len() >= 2,
            "line {}: needs expected, gold, pred",
            n + 1
        );
        let expected = cols[0] == "1";
        let gold = unescape(cols[1]);
        let pred = cols.get(2).map(|s| unescape(s)).unwrap_or_default();
        cases += 1;
        let got = match extract_reference(&gold) {
            Ok(g) => extract_answer(&pred, &ex)
                .map(|p| {
                    let r = equivalent(&g.answer, &p.answer, &eq);
                    // Symmetry, checked on every case.
                    assert_eq!(
                        r,
                        equivalent(&p.answer, &g.answer, &eq),
                        "asymmetric: {line}"
                    );
                    r
                })
                .unwrap_or(false),
            Err(e) => {
                failures.push(format!("line {}: reference error {e}: {line}", n + 1));
                continue;
            }
        };
        if got != expected {
            failures.push(format!(
                "line {}: expected {expected}, got {got}: {line}",
                n + 1
            ));
        }
    }
    println!("{cases} equivalence cases");
    assert!(cases >= 300, "table shrank to {cases} cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
