//! The order rows are cut into micro-batches in. Rows that share a prompt in one
//! micro-batch share its encoding, and only real tokens go through the model (see
//! `r1_model::shared_prefix`), so a GRPO group is kept whole: its prompt is then
//! encoded once instead of once per row. Groups are ordered by their longest
//! completion, so the padded blocks attention works on stay tight.
//!
//! Every loss type sums per-row terms under batch-level normalisers, so the order
//! changes nothing but rounding.

/// A row as the micro-batching sees it.
#[derive(Debug, Clone, Copy)]
pub struct RowShape {
    /// Which prompt the row follows (rows of one GRPO group share it).
    pub prompt: usize,
    pub completion_len: usize,
}

/// The row order (a permutation of `0..rows.len()`): groups whole, by their longest
/// completion; within a group, by completion length.
pub fn order_rows(rows: &[RowShape]) -> Vec<usize> {
    let mut groups: Vec<Vec<usize>> = vec![];
    for i in 0..rows.len() {
        match groups
            .iter_mut()
            .find(|g| rows[g[0]].prompt == rows[i].prompt)
        {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    for g in &mut groups {
        g.sort_by_key(|&i| rows[i].completion_len);
    }
    groups.sort_by_key(|g| g.iter().map(|&i| rows[i].completion_len).max());
    groups.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(prompt: usize, completion_len: usize) -> RowShape {
        RowShape {
            prompt,
            completion_len,
        }
    }

    #[test]
    fn groups_stay_whole_shortest_first() {
        // Groups of two, interleaved as dynamic sampling might leave them.
        let rows = [
            row(0, 50),
            row(1, 5),
            row(0, 10),
            row(1, 7),
            row(2, 30),
            row(2, 1),
        ];
        assert_eq!(order_rows(&rows), vec![1, 3, 5, 4, 2, 0]);
        assert!(order_rows(&[]).is_empty());
    }
}
