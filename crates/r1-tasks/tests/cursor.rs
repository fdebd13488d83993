//! DataCursor: per-epoch shuffles, exact resume.

use r1_tasks::{DataCursor, Example};

fn data(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example::new(i.to_string(), format!("q{i}"), "a"))
        .collect()
}

#[test]
fn each_epoch_is_a_permutation() {
    let d = data(10);
    let mut c = DataCursor::new(3);
    let e0: Vec<usize> = c.next_indices(d.len(), 10);
    let e1: Vec<usize> = c.next_indices(d.len(), 10);
    for e in [&e0, &e1] {
        let mut s = e.clone();
        s.sort_unstable();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
    assert_ne!(e0, e1, "epochs are reshuffled");
    assert_eq!(c.epoch, 1);
    assert_eq!(c.index, 10);
}

#[test]
fn resume_equals_uninterrupted_run() {
    let d = data(7);
    let mut straight = DataCursor::new(42);
    let want: Vec<Vec<String>> = (0..9)
        .map(|_| {
            straight
                .next_batch(&d, 3)
                .iter()
                .map(|e| e.id.clone())
                .collect()
        })
        .collect();

    let mut c = DataCursor::new(42);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(c.next_batch(&d, 3).iter().map(|e| e.id.clone()).collect());
    }
    // Save and restore through JSON, as a checkpoint would.
    let saved = serde_json::to_string(&c).unwrap();
    let mut c: DataCursor = serde_json::from_str(&saved).unwrap();
    for _ in 4..9 {
        got.push(
            c.next_batch(&d, 3)
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(got, want);
    assert_eq!(c, straight);
}

#[test]
fn empty_data_gives_empty_batch() {
    let mut c = DataCursor::new(0);
    assert!(c.next_batch(&[], 4).is_empty());
}
