//! LaTeX → plain math text.
//!
//! Models write the same answer in many LaTeX spellings (`\frac12`, `\dfrac{1}{2}`,
//! `\left(\frac{1}{2}\right)`, `$\tfrac{1}{2}$`). Rather than teach the expression
//! parser LaTeX, we first rewrite LaTeX into a small plain syntax that the parser in
//! [`super::expr`] understands: `((1)/(2))`, `sqrt(2)`, `root(x,3)`, `mat(1,2;3,4)`,
//! `pi`, `inf`, `{`/`}` only for sets (grouping braces become parentheses).
//!
//! Every recursive step is depth-limited so hostile input (ten thousand nested braces)
//! returns an error instead of overflowing the stack.

use super::MathError;

/// Deepest brace nesting we convert; real answers rarely exceed 10.
const MAX_DEPTH: usize = 64;

/// Drops characters that never carry meaning in an answer but break matching:
/// control characters, zero-width spaces/joiners, bidi marks, BOM. Also maps a few
/// Unicode math symbols to ASCII so `−3`, `3×4` and `π` work.
pub fn clean_unicode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {}
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' => {}
            '\u{FEFF}' | '\u{00AD}' => {}
            '\u{00A0}' | '\u{2009}' | '\u{202F}' | '\u{2002}'..='\u{2008}' => out.push(' '),
            '−' | '–' | '—' => out.push('-'),
            '×' | '·' | '⋅' => out.push('*'),
            '÷' => out.push('/'),
            'π' => out.push_str(" pi "),
            '∞' => out.push_str(" inf "),
            '√' => out.push_str("\\sqrt"),
            '≤' => out.push_str("<="),
            '≥' => out.push_str(">="),
            '≠' => out.push_str("!="),
            '°' => {}
            '∪' => out.push_str(" U "),
            '∅' => out.push_str("{}"),
            '±' => out.push('±'),
            c => out.push(c),
        }
    }
    out
}

/// Converts a LaTeX answer into the plain syntax of [`super::expr`].
pub fn latex_to_plain(s: &str) -> Result<String, MathError> {
    let chars: Vec<char> = clean_unicode(s).chars().collect();
    let mut c = Converter {
        s: &chars,
        i: 0,
        out: String::new(),
    };
    c.run(None, 0)?;
    Ok(c.out)
}

struct Converter<'a> {
    s: &'a [char],
    i: usize,
    out: String,
}

fn is_matrix_env(name: &str) -> bool {
    matches!(
        name,
        "pmatrix" | "bmatrix" | "Bmatrix" | "matrix" | "smallmatrix" | "array" | "vmatrix"
    )
}

impl<'a> Converter<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(' ')) {
            self.i += 1;
        }
    }

    /// Converts until `close` (consumed) or end of input.
    fn run(&mut self, close: Option<char>, depth: usize) -> Result<(), MathError> {
        if depth > MAX_DEPTH {
            return Err(MathError::TooDeep);
        }
        while let Some(ch) = self.peek() {
            if Some(ch) == close {
                self.i += 1;
                return Ok(());
            }
            self.i += 1;
            match ch {
                '\\' => self.command(depth)?,
                '{' => {
                    // `1{,}000` is LaTeX's way of writing a thousands separator.
                    if self.s.get(self.i) == Some(&',') && self.s.get(self.i + 1) == Some(&'}') {
                        self.i += 2;
                        self.out.push(',');
                        continue;
                    }
                    self.out.push('(');
                    self.run(Some('}'), depth + 1)?;
                    self.out.push(')');
                }
                '$' | '~' => self.out.push(' '),
                '^' => self.superscript(depth)?,
                '_' => self.subscript(depth)?,
                c => self.out.push(c),
            }
        }
        if close.is_some() {
            // An unclosed group means a truncated or malformed answer: reject it
            // rather than guess (a reference like this must be an error).
            return Err(MathError::Syntax("unbalanced braces".into()));
        }
        Ok(())
    }

    /// Reads one macro argument: a `{group}`, a command, or a single character.
    fn arg(&mut self, depth: usize) -> Result<String, MathError> {
        self.skip_spaces();
        let saved = std::mem::take(&mut self.out);
        match self.peek() {
            Some('{') => {
                self.i += 1;
                self.run(Some('}'), depth + 1)?;
            }
            Some('\\') => {
                self.i += 1;
                self.command(depth + 1)?;
            }
            Some(c) => {
                self.i += 1;
                self.out.push(c);
            }
            None => {}
        }
        Ok(std::mem::replace(&mut self.out, saved))
    }

    /// Reads a raw `[...]` optional argument, converted.
    fn opt_arg(&mut self, depth: usize) -> Result<Option<String>, MathError> {
        self.skip_spaces();
        if self.peek() != Some('[') {
            return Ok(None);
        }
        self.i += 1;
        let saved = std::mem::take(&mut self.out);
        self.run(Some(']'), depth + 1)?;
        Ok(Some(std::mem::replace(&mut self.out, saved)))
    }

    fn read_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphabetic() {
                name.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        if name.is_empty() {
            if let Some(c) = self.peek() {
                self.i += 1;
                name.push(c);
            }
        }
        name
    }

    fn superscript(&mut self, depth: usize) -> Result<(), MathError> {
        // Degrees: `^\circ`, `^{\circ}`, `^{ \circ }` are dropped (30^\circ == 30).
        let rest: String = self.s[self.i..self.s.len().min(self.i + 12)]
            .iter()
            .filter(|c| **c != ' ')
            .collect();
        for pat in ["\\circ", "{\\circ}"] {
            if rest.starts_with(pat) {
                let mut seen = 0;
                let want = pat.len();
                while seen < want {
                    if self.s[self.i] != ' ' {
                        seen += 1;
                    }
                    self.i += 1;
                }
                return Ok(());
            }
        }
        let mut a = self.arg(depth)?;
        // `2^10` is written by models meaning 2^{10}; LaTeX would render 2¹0, which
        // nobody means in an answer.
        if a.len() == 1 && a.chars().all(|c| c.is_ascii_digit()) {
            while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                a.push(d);
                self.i += 1;
            }
        }
        self.out.push_str("^(");
        self.out.push_str(&a);
        self.out.push(')');
        Ok(())
    }

    fn subscript(&mut self, depth: usize) -> Result<(), MathError> {
        // Subscripts become part of a name (`x_{12}` → `x_12`) so they are never
        // mistaken for multiplication.
        let a = self.arg(depth)?;
        let name: String = a.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        if !name.is_empty() {
            // `\log _2` → `log_2`: the subscript attaches to the preceding name.
            let kept = self.out.trim_end().len();
            self.out.truncate(kept);
            self.out.push('_');
            self.out.push_str(&name);
        }
        Ok(())
    }

    fn command(&mut self, depth: usize) -> Result<(), MathError> {
        if depth > MAX_DEPTH {
            return Err(MathError::TooDeep);
        }
        let name = self.read_name();
        match name.as_str() {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let a = self.arg(depth)?;
                let b = self.arg(depth)?;
                self.fraction(&a, &b);
            }
            "binom" | "dbinom" | "tbinom" | "choose" => {
                let a = self.arg(depth)?;
                let b = self.arg(depth)?;
                self.out.push_str(&format!(" binom(({a}),({b})) "));
            }
            "sqrt" => {
                let n = self.opt_arg(depth)?;
                let a = self.arg(depth)?;
                match n {
                    Some(n) => self.out.push_str(&format!(" root(({a}),({n})) ")),
                    None => self.out.push_str(&format!(" sqrt({a}) ")),
                }
            }
            "left" | "right" | "bigl" | "bigr" | "Bigl" | "Bigr" | "big" | "Big" | "biggl"
            | "biggr" | "bigg" | "Bigg" | "middle" => {
                // Sizing commands: keep the delimiter, drop `.` (an invisible one).
                self.skip_spaces();
                if self.peek() == Some('.') {
                    self.i += 1;
                }
            }
            "text" | "textbf" | "textit" | "textrm" | "mathrm" | "mathbf" | "mathit" | "mbox"
            | "operatorname" | "mathsf" | "textsf" | "boldsymbol" | "mathbb" | "mathcal"
            | "boxed" | "fbox" | "textnormal" | "emph" | "hbox" | "num" | "displaystyle"
            | "textstyle" | "ensuremath" | "underline" | "overline" => {
                if matches!(name.as_str(), "displaystyle" | "textstyle") {
                    return Ok(());
                }
                let a = self.arg(depth)?;
                self.out.push(' ');
                self.out.push_str(a.trim());
                self.out.push(' ');
            }
            "!" => {} // negative thin space, used inside numbers: `32,\!348`
            "," | ";" | ":" | " " | "quad" | "qquad" | "enspace" | "thinspace" | ">" => {
                self.out.push(' ')
            }
            "$" | "#" | "&" => {}
            "%" => self.out.push('%'),
            "{" | "lbrace" => self.out.push('{'),
            "}" | "rbrace" => self.out.push('}'),
            "|" | "lvert" | "rvert" | "vert" | "mid" | "lVert" | "rVert" => self.out.push('|'),
            "langle" => self.out.push('('),
            "rangle" => self.out.push(')'),
            "pi" => self.out.push_str(" pi "),
            "infty" | "infin" => self.out.push_str(" inf "),
            "cdot" | "times" | "ast" | "cdotp" => self.out.push('*'),
            "div" => self.out.push('/'),
            "le" | "leq" | "leqslant" => self.out.push_str("<="),
            "ge" | "geq" | "geqslant" => self.out.push_str(">="),
            "lt" => self.out.push('<'),
            "gt" => self.out.push('>'),
            "ne" | "neq" => self.out.push_str("!="),
            "approx" | "simeq" | "equiv" | "cong" => self.out.push('='),
            "pm" => self.out.push('±'),
            "mp" => self.out.push('∓'),
            "in" => self.out.push_str(" in "),
            "cup" => self.out.push_str(" U "),
            "emptyset" | "varnothing" => self.out.push_str("{}"),
            "circ" | "degree" | "deg" => {}
            "dots" | "ldots" | "cdots" => self.out.push_str("..."),
            "prime" => self.out.push('\''),
            "\\" => self.out.push(','),
            "sin" | "cos" | "tan" | "sec" | "csc" | "cot" | "ln" | "log" | "exp" | "arcsin"
            | "arccos" | "arctan" | "sinh" | "cosh" | "tanh" => {
                self.out.push(' ');
                self.out.push_str(&name);
                self.out.push(' ');
            }
            "begin" => self.environment(depth)?,
            "end" => {
                let _ = self.arg(depth)?;
            }
            _ => {
                // Unknown macro (Greek letters and the like): keep its name as an
                // identifier so `\alpha` == `\alpha` and `\theta+1` parses.
                self.out.push(' ');
                self.out.push_str(&name);
                self.out.push(' ');
            }
        }
        Ok(())
    }

    /// `\frac{a}{b}`, with mixed numbers: `3\frac{1}{2}` means 3 + 1/2, not 3 · 1/2.
    fn fraction(&mut self, a: &str, b: &str) {
        let is_int = |t: &str| !t.trim().is_empty() && t.trim().chars().all(|c| c.is_ascii_digit());
        if is_int(a) && is_int(b) {
            let trimmed = self.out.trim_end();
            let digits: String = trimmed
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if !digits.is_empty() {
                let before = trimmed[..trimmed.len() - digits.len()].chars().last();
                if matches!(before, None | Some(' ' | '+' | '-' | '(' | '=' | ',' | '{')) {
                    let whole: String = digits.chars().rev().collect();
                    let keep = trimmed.len() - digits.len();
                    self.out.truncate(keep);
                    self.out
                        .push_str(&format!("({whole}+({})/({}))", a.trim(), b.trim()));
                    return;
                }
            }
        }
        self.out.push_str(&format!("(({a})/({b}))"));
    }

    /// `\begin{pmatrix} a & b \\ c & d \end{pmatrix}` → `mat(a,b;c,d)`; other
    /// environments are converted inline.
    fn environment(&mut self, depth: usize) -> Result<(), MathError> {
        let env = self.arg(depth)?.trim().to_string();
        if !is_matrix_env(&env) {
            return Ok(());
        }
        if env == "array" {
            let _colspec = self.arg(depth)?;
        }
        let end = format!("\\end{{{env}}}");
        let end_chars: Vec<char> = end.chars().collect();
        let start = self.i;
        let mut stop = self.s.len();
        let mut j = self.i;
        while j + end_chars.len() <= self.s.len() {
            if self.s[j..j + end_chars.len()] == end_chars[..] {
                stop = j;
                break;
            }
            j += 1;
        }
        let body: String = self.s[start..stop].iter().collect();
        self.i = (stop + end_chars.len()).min(self.s.len());
        let mut rows = Vec::new();
        for row in body.split("\\\\") {
            if row.trim().is_empty() || row.trim() == "\\hline" {
                continue;
            }
            let mut cells = Vec::new();
            for cell in row.split('&') {
                let chars: Vec<char> = cell.chars().collect();
                let mut sub = Converter {
                    s: &chars,
                    i: 0,
                    out: String::new(),
                };
                sub.run(None, depth + 1)?;
                cells.push(sub.out.trim().to_string());
            }
            rows.push(cells.join(","));
        }
        self.out.push_str(&format!(" mat({}) ", rows.join(";")));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        latex_to_plain(s)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn fractions_and_mixed_numbers() {
        assert_eq!(p("\\frac{1}{2}"), "((1)/(2))");
        assert_eq!(p("\\frac12"), "((1)/(2))");
        assert_eq!(p("3\\frac{1}{2}"), "(3+(1)/(2))");
        assert_eq!(p("x\\frac{1}{2}"), "x((1)/(2))");
    }

    #[test]
    fn degrees_and_sqrt() {
        assert_eq!(p("30^\\circ"), "30");
        assert_eq!(p("30^{\\circ}"), "30");
        assert_eq!(p("\\sqrt[3]{8}"), "root((8),(3))");
        assert_eq!(p("x^{2}"), "x^(2)");
    }

    #[test]
    fn matrices() {
        assert_eq!(
            p("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
            "mat(1,2;3,4)"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let s = "{".repeat(10_000) + &"}".repeat(10_000);
        assert!(latex_to_plain(&s).is_err());
    }
}
