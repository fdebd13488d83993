//! Reading a score out of a judge's reply, and choosing what the judge sees.

/// The score in a judge's reply, first rule that matches:
/// 1. `<score>7</score>`;
/// 2. a label — `Score: 7`, `score = 7`, `Rating: 7/10` (case-insensitive), the last
///    one when there are several (judges often restate the final verdict);
/// 3. the whole reply is a number (`7`, ` 8.5 `);
/// 4. `7/10` or `7 out of 10` anywhere (the first number is taken).
///
/// `None` when nothing matches: the caller scores 0 and says why.
pub fn parse_score(reply: &str) -> Option<f64> {
    let lower = reply.to_ascii_lowercase();
    if let Some(i) = lower.rfind("<score>") {
        let rest = &reply[i + "<score>".len()..];
        let end = rest.find('<').unwrap_or(rest.len());
        if let Some(v) = leading_number(rest[..end].trim()) {
            return Some(v);
        }
    }
    for label in ["score", "rating"] {
        let mut found = None;
        for (i, _) in lower.match_indices(label) {
            let rest = lower[i + label.len()..].trim_start_matches(['*', ' ']);
            if let Some(r) = rest.strip_prefix([':', '=']) {
                if let Some(v) = leading_number(r.trim_start_matches(['*', ' '])) {
                    found = Some(v);
                }
            }
        }
        if found.is_some() {
            return found;
        }
    }
    if let Ok(v) = reply.trim().parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    for sep in ["/", " out of "] {
        if let Some(i) = lower.find(sep) {
            let head = lower[..i].trim_end();
            let start = head
                .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map_or(0, |k| k + 1);
            if let Ok(v) = head[start..].parse::<f64>() {
                return Some(v);
            }
        }
    }
    None
}

/// The number at the start of `s` (`7`, `-1`, `8.5`, `7/10` → 7).
fn leading_number(s: &str) -> Option<f64> {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
        .map_or(s.len(), |(i, _)| i);
    s[..end]
        .trim_end_matches('.')
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// The final answer of a response, what `helpfulness` judges (the paper judges the
/// summary, not the reasoning):
/// - text after the last `</think>`, trimmed;
/// - no `</think>` but the response opens with `<think>`: the reasoning never ended,
///   there is no final answer (`None`);
/// - no think tags at all: the whole response is the answer.
pub fn final_answer(response: &str) -> Option<&str> {
    if let Some(k) = response.rfind("</think>") {
        return Some(response[k + "</think>".len()..].trim());
    }
    if response.trim_start().starts_with("<think>") {
        return None;
    }
    Some(response.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores() {
        assert_eq!(parse_score("<score>7</score>"), Some(7.0));
        assert_eq!(parse_score("Reasoning... <SCORE> 8.5 </SCORE>"), Some(8.5));
        assert_eq!(parse_score("The answer is fine.\nScore: 7"), Some(7.0));
        assert_eq!(parse_score("**Score:** 6/10"), Some(6.0));
        assert_eq!(parse_score("score = 3. Then final Score: 9"), Some(9.0));
        assert_eq!(parse_score("Rating: 4"), Some(4.0));
        assert_eq!(parse_score(" 8 "), Some(8.0));
        assert_eq!(parse_score("I give it 7/10."), Some(7.0));
        assert_eq!(parse_score("I give it 7 out of 10."), Some(7.0));
        assert_eq!(parse_score("good answer"), None);
        assert_eq!(parse_score("Score: none"), None);
    }

    #[test]
    fn final_answers() {
        assert_eq!(
            final_answer("<think>a</think>b</think> The end. "),
            Some("The end.")
        );
        assert_eq!(final_answer("<think>never closed"), None);
        assert_eq!(final_answer(" plain answer "), Some("plain answer"));
    }
}
