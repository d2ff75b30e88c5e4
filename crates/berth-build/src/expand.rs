//! Word processing as Docker's builder does it: quote removal, escapes and variable
//! substitution (`$v`, `${v}`, `${v:-d}`, `${v-d}`, `${v:+a}`, `${v+a}`, `${v:?msg}`, `${v?msg}`).
//!
//! The escape character is the Dockerfile's (`\` or the `escape` directive's backtick).

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A `${` without its closing `}`.
    #[error("missing '}}' in {word:?}")]
    UnclosedBrace {
        /// The word being processed.
        word: String,
    },
    /// A `'` or `"` without its closing quote.
    #[error("unterminated quote in {word:?}")]
    UnclosedQuote {
        /// The word being processed.
        word: String,
    },
    /// A modifier that is not supported after a variable name.
    #[error("unsupported modifier {modifier:?} in {word:?}")]
    BadModifier {
        /// The modifier seen.
        modifier: String,
        /// The word being processed.
        word: String,
    },
    /// `${v:?msg}` with `v` unset.
    #[error("{name}: {message}")]
    Required {
        /// The variable name.
        name: String,
        /// The message given in the word.
        message: String,
    },
}

impl ExpandError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        crate::Kind::InvalidArgument
    }
}

/// Expands words with a lookup for variables.
pub struct Expander<'a> {
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Expander<'a> {
    /// An expander with escape character `escape` and variables from `lookup`.
    pub fn new(escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Expander { escape, lookup }
    }

    /// Processes one word: removes quotes and escapes, substitutes variables; whitespace is kept.
    pub fn word(&self, word: &str) -> Result<String, ExpandError> {
        let mut words = self.process(word, false)?;
        Ok(words.pop().unwrap_or_default())
    }

    /// Processes a line into words split at unquoted whitespace.
    pub fn words(&self, line: &str) -> Result<Vec<String>, ExpandError> {
        self.process(line, true)
    }

    fn process(&self, input: &str, split: bool) -> Result<Vec<String>, ExpandError> {
        let chars: Vec<char> = input.chars().collect();
        let mut i = 0;
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while i < chars.len() {
            let c = chars[i];
            if split && c.is_whitespace() {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                i += 1;
                continue;
            }
            in_word = true;
            if c == '\'' {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(ExpandError::UnclosedQuote {
                        word: input.to_owned(),
                    });
                }
                cur.extend(&chars[start..i]);
                i += 1;
            } else if c == '"' {
                i += 1;
                loop {
                    if i >= chars.len() {
                        return Err(ExpandError::UnclosedQuote {
                            word: input.to_owned(),
                        });
                    }
                    let d = chars[i];
                    if d == '"' {
                        i += 1;
                        break;
                    }
                    if d == self.escape && i + 1 < chars.len() {
                        let n = chars[i + 1];
                        if n == '"' || n == '$' || n == self.escape {
                            cur.push(n);
                            i += 2;
                            continue;
                        }
                        cur.push(d);
                        i += 1;
                        continue;
                    }
                    if d == '$' {
                        i = self.dollar(&chars, i, &mut cur, input)?;
                        continue;
                    }
                    cur.push(d);
                    i += 1;
                }
            } else if c == self.escape {
                if i + 1 < chars.len() {
                    cur.push(chars[i + 1]);
                    i += 2;
                } else {
                    i += 1;
                }
            } else if c == '$' {
                if split {
                    // Unquoted substitutions split into words at whitespace, as in a shell.
                    let mut value = String::new();
                    i = self.dollar(&chars, i, &mut value, input)?;
                    for v in value.chars() {
                        if v.is_whitespace() {
                            if !cur.is_empty() {
                                words.push(std::mem::take(&mut cur));
                            }
                        } else {
                            cur.push(v);
                        }
                    }
                    in_word = !cur.is_empty() || i < chars.len() && !chars[i].is_whitespace();
                } else {
                    i = self.dollar(&chars, i, &mut cur, input)?;
                }
            } else {
                cur.push(c);
                i += 1;
            }
        }
        if in_word || !split {
            words.push(cur);
        }
        Ok(words)
    }

    /// Handles a `$` at `chars[i]`; appends the substitution to `out`; returns the next index.
    fn dollar(
        &self,
        chars: &[char],
        i: usize,
        out: &mut String,
        input: &str,
    ) -> Result<usize, ExpandError> {
        let mut j = i + 1;
        if j >= chars.len() {
            out.push('$');
            return Ok(j);
        }
        if chars[j] != '{' {
            let start = j;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if start == j {
                out.push('$');
                return Ok(start);
            }
            let name: String = chars[start..j].iter().collect();
            out.push_str(&(self.lookup)(&name).unwrap_or_default());
            return Ok(j);
        }
        j += 1;
        let start = j;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let name: String = chars[start..j].iter().collect();
        if j >= chars.len() {
            return Err(ExpandError::UnclosedBrace {
                word: input.to_owned(),
            });
        }
        if chars[j] == '}' {
            out.push_str(&(self.lookup)(&name).unwrap_or_default());
            return Ok(j + 1);
        }
        // A modifier follows; find the matching close brace (nested ${} allowed).
        let mut colon = false;
        if chars[j] == ':' {
            colon = true;
            j += 1;
        }
        let op = *chars.get(j).ok_or_else(|| ExpandError::UnclosedBrace {
            word: input.to_owned(),
        })?;
        j += 1;
        let wstart = j;
        let mut depth = 0usize;
        while j < chars.len() {
            if chars[j] == self.escape {
                j += 2;
                continue;
            }
            if chars[j] == '$' && chars.get(j + 1) == Some(&'{') {
                depth += 1;
                j += 2;
                continue;
            }
            if chars[j] == '}' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            j += 1;
        }
        if j >= chars.len() {
            return Err(ExpandError::UnclosedBrace {
                word: input.to_owned(),
            });
        }
        let arg_raw: String = chars[wstart..j].iter().collect();
        let value = (self.lookup)(&name);
        let set = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        match op {
            '-' => {
                if set {
                    out.push_str(value.as_deref().unwrap_or(""));
                } else {
                    out.push_str(&self.word(&arg_raw)?);
                }
            }
            '+' => {
                if set {
                    out.push_str(&self.word(&arg_raw)?);
                }
            }
            '?' => {
                if set {
                    out.push_str(value.as_deref().unwrap_or(""));
                } else {
                    let message = self.word(&arg_raw)?;
                    return Err(ExpandError::Required {
                        message: if message.is_empty() {
                            "is not allowed to be unset".into()
                        } else {
                            message
                        },
                        name,
                    });
                }
            }
            other => {
                return Err(ExpandError::BadModifier {
                    modifier: format!("{}{}", if colon { ":" } else { "" }, other),
                    word: input.to_owned(),
                })
            }
        }
        Ok(j + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "a" => Some("A".into()),
            "empty" => Some(String::new()),
            "sp" => Some("x y".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        Expander::new('\\', &env).word(s).expect("expands")
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$a"), "A");
        assert_eq!(w("${a}b"), "Ab");
        assert_eq!(w("$a-b"), "A-b");
        assert_eq!(w("$nope"), "");
        assert_eq!(w("cost $"), "cost $");
        assert_eq!(w("$1x"), "");
    }

    #[test]
    fn modifiers() {
        assert_eq!(w("${nope:-def}"), "def");
        assert_eq!(w("${empty:-def}"), "def");
        assert_eq!(w("${empty-def}"), "");
        assert_eq!(w("${nope-def}"), "def");
        assert_eq!(w("${a:-def}"), "A");
        assert_eq!(w("${a:+alt}"), "alt");
        assert_eq!(w("${empty:+alt}"), "");
        assert_eq!(w("${empty+alt}"), "alt");
        assert_eq!(w("${nope:+alt}"), "");
        assert_eq!(w("${nope:-${a}x}"), "Ax");
    }

    #[test]
    fn required() {
        let e = Expander::new('\\', &env).word("${nope:?need it}");
        assert!(matches!(e, Err(ExpandError::Required { .. })));
        assert_eq!(w("${a:?x}"), "A");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$a'"), "$a");
        assert_eq!(w("\"$a b\""), "A b");
        assert_eq!(w("\\$a"), "$a");
        assert_eq!(w("\"\\$a\""), "$a");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("a\\ b"), "a b");
        let bt = Expander::new('`', &env);
        assert_eq!(bt.word("`$a").expect("expands"), "$a");
        assert_eq!(bt.word("c:\\x").expect("expands"), "c:\\x");
    }

    #[test]
    fn words_split() {
        let e = Expander::new('\\', &env);
        assert_eq!(
            e.words("80 $a \"x y\"").expect("expands"),
            vec!["80", "A", "x y"]
        );
        assert_eq!(e.words("$sp").expect("expands"), vec!["x", "y"]);
        assert_eq!(e.words("\"$sp\"").expect("expands"), vec!["x y"]);
        assert_eq!(e.words("  ").expect("expands"), Vec::<String>::new());
    }

    #[test]
    fn errors() {
        let e = Expander::new('\\', &env);
        assert!(matches!(
            e.word("${a"),
            Err(ExpandError::UnclosedBrace { .. })
        ));
        assert!(matches!(
            e.word("'abc"),
            Err(ExpandError::UnclosedQuote { .. })
        ));
        assert!(matches!(
            e.word("${a/x/y}"),
            Err(ExpandError::BadModifier { .. })
        ));
    }
}
