//! `.dockerignore` rules, matched as Docker matches them: Go `filepath.Match` syntax per
//! pattern (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes) plus `**` for any number of directories,
//! `!` for exceptions, leading `/` and `./` cleaned away, and the last matching rule winning.
//! A path is also excluded when a pattern matches one of its parent directories.

use regex::Regex;

/// A bad pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// The pattern does not compile (an unclosed `[` for instance).
    #[error("invalid .dockerignore pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

impl IgnoreError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::Kind {
        crate::Kind::InvalidArgument
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exclusion: bool,
    re: Regex,
}

/// A compiled list of ignore rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

impl IgnoreRules {
    /// Parses the contents of a `.dockerignore` file.
    pub fn parse(contents: &str) -> Result<Self, IgnoreError> {
        let lines: Vec<String> = contents
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        Self::from_patterns(&lines)
    }

    /// Compiles patterns (as written in the file, `!` allowed).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let raw = p.as_ref().trim();
            let (exclusion, body) = match raw.strip_prefix('!') {
                Some(b) => (true, b.trim()),
                None => (false, raw),
            };
            let cleaned = clean(body);
            if cleaned.is_empty() || cleaned == "." {
                // Docker ignores a bare "." or "/" rule's effect on the root itself.
                if cleaned.is_empty() {
                    continue;
                }
            }
            let re = compile(&cleaned).map_err(|reason| IgnoreError::BadPattern {
                pattern: raw.to_owned(),
                reason,
            })?;
            out.push(Pattern {
                text: cleaned,
                exclusion,
                re,
            });
        }
        Ok(IgnoreRules { patterns: out })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the context-relative path `rel` (slash separated) is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let rel = clean(rel);
        let parents: Vec<&str> = rel.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.re.is_match(&rel);
            if !m && parents.len() > 1 {
                for i in 1..parents.len() {
                    if p.re.is_match(&parents[..i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a directory may hold files that are not excluded even though the directory
    /// itself is: true when some exception rule could match below it.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        self.patterns.iter().any(|p| {
            p.exclusion
                && (p.text.starts_with(&format!("{dir}/"))
                    || p.text.contains('*')
                    || p.text.contains('?')
                    || p.text.contains('['))
        })
    }
}

/// Cleans a path like Go's `filepath.Clean`, then drops a leading `/` or `./`.
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !p.starts_with('/') {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return ".".into();
    }
    parts.join("/")
}

fn compile(pattern: &str) -> Result<Regex, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => {
                if chars.get(i + 1) == Some(&'*') {
                    i += 1;
                    // Treat "**/" as optional leading directories.
                    if chars.get(i + 1) == Some(&'/') {
                        i += 1;
                        re.push_str("(.*/)?");
                    } else {
                        re.push_str(".*");
                    }
                } else {
                    re.push_str("[^/]*");
                }
            }
            '?' => re.push_str("[^/]"),
            '[' => {
                let mut j = i + 1;
                let mut class = String::from("[");
                if chars.get(j) == Some(&'^') {
                    class.push('^');
                    j += 1;
                }
                let mut closed = false;
                let mut first = true;
                while j < chars.len() {
                    let d = chars[j];
                    if d == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    if d == '\\' {
                        j += 1;
                        match chars.get(j) {
                            Some(e) => class.push_str(&regex::escape(&e.to_string())),
                            None => return Err("a trailing \\ in a character class".into()),
                        }
                    } else if d == '[' || d == '&' || d == '~' || d == '|' {
                        class.push('\\');
                        class.push(d);
                    } else {
                        class.push(d);
                    }
                    j += 1;
                }
                if !closed {
                    return Err("an unclosed [ character class".into());
                }
                class.push(']');
                re.push_str(&class);
                i = j;
            }
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some(e) => re.push_str(&regex::escape(&e.to_string())),
                    None => return Err("a trailing \\".into()),
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(p: &[&str]) -> IgnoreRules {
        IgnoreRules::from_patterns(p).expect("valid")
    }

    #[test]
    fn star_and_question() {
        let r = rules(&["*.md", "temp?"]);
        assert!(r.is_excluded("README.md"));
        assert!(!r.is_excluded("docs/README.md"), "* does not cross /");
        assert!(r.is_excluded("temp1"));
        assert!(!r.is_excluded("temp12"));
    }

    #[test]
    fn doublestar() {
        let r = rules(&["**/*.go"]);
        assert!(r.is_excluded("a.go"));
        assert!(r.is_excluded("x/y/z.go"));
        let r = rules(&["a/**/b"]);
        assert!(r.is_excluded("a/b"));
        assert!(r.is_excluded("a/x/y/b"));
        let r = rules(&["**"]);
        assert!(r.is_excluded("anything/at/all"));
    }

    #[test]
    fn exceptions_and_order() {
        let r = rules(&["*.md", "!README.md"]);
        assert!(r.is_excluded("CHANGES.md"));
        assert!(!r.is_excluded("README.md"));
        let r = rules(&["!README.md", "*.md"]);
        assert!(r.is_excluded("README.md"), "the later rule wins");
        let r = rules(&["*.md", "!README*.md", "README-secret.md"]);
        assert!(r.is_excluded("README-secret.md"));
        assert!(!r.is_excluded("README-public.md"));
    }

    #[test]
    fn parents_and_cleaning() {
        let r = rules(&["/node_modules", "./build/"]);
        assert!(r.is_excluded("node_modules"));
        assert!(r.is_excluded("node_modules/x/y.js"));
        assert!(r.is_excluded("build/out"));
        assert!(!r.is_excluded("src/node_modules"));
        let r = rules(&["dir", "!dir/keep"]);
        assert!(r.is_excluded("dir/other"));
        assert!(!r.is_excluded("dir/keep"));
    }

    #[test]
    fn file_parsing() {
        let r = IgnoreRules::parse("# comment\n\n  *.log  \n!keep.log\n").expect("valid");
        assert!(r.is_excluded("a.log"));
        assert!(!r.is_excluded("keep.log"));
        assert!(!r.is_excluded("# comment"));
    }

    #[test]
    fn classes_and_escapes() {
        let r = rules(&["file[0-9]", "x[^a]", "lit\\*"]);
        assert!(r.is_excluded("file3"));
        assert!(!r.is_excluded("filea"));
        assert!(r.is_excluded("xb"));
        assert!(!r.is_excluded("xa"));
        assert!(r.is_excluded("lit*"));
        assert!(!r.is_excluded("litx"));
        assert!(IgnoreRules::from_patterns(&["bad["]).is_err());
    }
}
