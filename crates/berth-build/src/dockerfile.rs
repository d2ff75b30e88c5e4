//! The Dockerfile parser: parser directives, comments, line continuations, heredocs, exec and
//! shell forms, instruction flags, and every instruction of the reference.
//!
//! Parsing does not expand variables: that needs the build's ARG and ENV state, so the
//! executor does it (see [`crate::expand`]). Errors carry the file, line and column, and
//! show the offending line like a compiler does.

use std::fmt;

use serde::Serialize;

/// A parse failure, positioned in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The file name as the user named it (`Dockerfile`, `-` for stdin).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The text of the offending line.
    pub source_line: String,
}

impl ParseError {
    /// The kind of failure: always invalid input.
    pub fn kind(&self) -> crate::Kind {
        crate::Kind::InvalidArgument
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n {:>4} | {}\n      | {:>width$}",
            self.file,
            self.line,
            self.column,
            self.message,
            self.line,
            self.source_line,
            "^",
            width = self.column
        )
    }
}

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# syntax=`: accepted and ignored (berth has one frontend).
    pub syntax: Option<String>,
    /// `# check=`: accepted and recorded.
    pub check: Option<String>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The parser directives.
    pub directives: Directives,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines only, unless redeclared).
    pub global_args: Vec<Instruction>,
    /// The stages, in file order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Position among the stages, from 0.
    pub index: usize,
    /// The `AS` name, lowercased.
    pub name: Option<String>,
    /// The base, unexpanded: an image reference, a stage name or `scratch`.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// Line of the `FROM`.
    pub line: usize,
    /// The `FROM` line's text.
    pub text: String,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

/// One instruction with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// First line, 1-based.
    pub line: usize,
    /// Last line (continuations and heredocs included).
    pub end_line: usize,
    /// The logical line as written, continuations joined (heredoc bodies not included).
    pub text: String,
    /// What the instruction says.
    pub kind: InstructionKind,
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandForm {
    /// `["prog", "arg"]`
    Exec(Vec<String>),
    /// `prog arg`, run with the stage's SHELL.
    Shell(String),
}

/// A heredoc body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word (`EOF`).
    pub name: String,
    /// The body, each line ending in a newline.
    pub content: String,
    /// Whether variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs were stripped.
    pub strip_tabs: bool,
}

/// `RUN --mount=type=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Mount {
    /// A `--secret` made available to this step only.
    Secret {
        /// Secret id (defaults to the target's base name).
        id: String,
        /// Where it appears; default `/run/secrets/<id>`.
        target: String,
        /// Fail the step when the secret was not given.
        required: bool,
        /// File mode, default 0400.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// A cache directory kept across builds.
    Cache {
        /// Where it is mounted.
        target: String,
        /// Cache id (defaults to the target).
        id: String,
        /// Read only.
        readonly: bool,
        /// `shared`, `private` or `locked`.
        sharing: String,
        /// Directory mode.
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// A bind mount of the context or another stage, read only unless `rw`.
    Bind {
        /// Where it is mounted.
        target: String,
        /// Path within the source.
        source: String,
        /// A stage or image; the context when absent.
        from: Option<String>,
        /// Writes allowed (and discarded).
        rw: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Where it is mounted.
        target: String,
    },
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command; heredocs already folded into a shell script.
    pub command: CommandForm,
    /// `--mount`s.
    pub mounts: Vec<Mount>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `--security=insecure|sandbox`.
    pub security: Option<String>,
    /// The heredocs of the line.
    pub heredocs: Vec<Heredoc>,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopySpec {
    /// Sources, unexpanded (context paths, stage paths or, for ADD, URLs).
    pub sources: Vec<String>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `--chown=user:group`.
    pub chown: Option<String>,
    /// `--chmod=0755`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `ADD --keep-git-dir`.
    pub keep_git_dir: bool,
    /// `ADD --checksum`.
    pub checksum: Option<String>,
    /// Inline files (`COPY <<EOF /dest`).
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd {
        /// The test command.
        command: CommandForm,
        /// `--interval` in nanoseconds.
        interval: Option<u64>,
        /// `--timeout` in nanoseconds.
        timeout: Option<u64>,
        /// `--start-period` in nanoseconds.
        start_period: Option<u64>,
        /// `--start-interval` in nanoseconds.
        start_interval: Option<u64>,
        /// `--retries`.
        retries: Option<u32>,
    },
}

/// What an instruction says. Strings are unexpanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum InstructionKind {
    /// `FROM` (only inside [`Stage`]; kept for `ONBUILD` errors).
    From {
        /// The base.
        base: String,
    },
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd(CommandForm),
    /// `ENTRYPOINT`.
    Entrypoint(CommandForm),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `MAINTAINER name`.
    Maintainer(String),
    /// `EXPOSE 80/tcp ...`.
    Expose(Vec<String>),
    /// `ENV k=v ...` or `ENV k v`.
    Env(Vec<(String, String)>),
    /// `ADD`.
    Add(CopySpec),
    /// `COPY`.
    Copy(CopySpec),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `USER`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `ONBUILD <instruction>`: stored in the image, run by its children.
    Onbuild(String),
    /// `STOPSIGNAL`.
    Stopsignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL ["sh", "-c"]`.
    Shell(Vec<String>),
}

impl InstructionKind {
    /// The instruction keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::From { .. } => "FROM",
            InstructionKind::Run(_) => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Stopsignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Shell(_) => "SHELL",
        }
    }
}

/// A physical line of the source.
struct Line<'a> {
    number: usize,
    text: &'a str,
}

/// A logical line: continuation lines joined, with a map back to positions.
struct Logical {
    text: String,
    /// (offset in `text`, line number, column of that offset) per joined segment.
    segments: Vec<(usize, usize, usize)>,
    first_line: usize,
    last_line: usize,
}

impl Logical {
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut found = (self.first_line, 1);
        for &(start, line, col) in &self.segments {
            if offset >= start {
                found = (line, col + self.text[start..offset].chars().count());
            }
        }
        found
    }
}

/// Parses `source`, naming it `file` in errors.
pub fn parse(source: &str, file: &str) -> Result<Dockerfile, ParseError> {
    Parser::new(source, file).run()
}

struct Parser<'a> {
    file: &'a str,
    lines: Vec<Line<'a>>,
    pos: usize,
    escape: char,
}

const KNOWN: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

impl<'a> Parser<'a> {
    fn new(source: &'a str, file: &'a str) -> Self {
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let lines = source
            .split('\n')
            .enumerate()
            .map(|(i, t)| Line {
                number: i + 1,
                text: t.strip_suffix('\r').unwrap_or(t),
            })
            .collect();
        Parser {
            file,
            lines,
            pos: 0,
            escape: '\\',
        }
    }

    fn err_at(&self, line: usize, column: usize, message: impl Into<String>) -> ParseError {
        let source_line = self
            .lines
            .get(line.wrapping_sub(1))
            .map(|l| l.text.to_owned())
            .unwrap_or_default();
        ParseError {
            file: self.file.to_owned(),
            line,
            column: column.max(1),
            message: message.into(),
            source_line,
        }
    }

    fn err_logical(&self, l: &Logical, offset: usize, message: impl Into<String>) -> ParseError {
        let (line, col) = l.position(offset);
        self.err_at(line, col, message)
    }

    fn directives(&mut self) -> Result<Directives, ParseError> {
        let mut d = Directives {
            escape: '\\',
            syntax: None,
            check: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while self.pos < self.lines.len() {
            let line = &self.lines[self.pos];
            let t = line.text.trim();
            let Some(rest) = t.strip_prefix('#') else {
                break;
            };
            let Some((k, v)) = rest.split_once('=') else {
                break;
            };
            let key = k.trim().to_ascii_lowercase();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                break;
            }
            let value = v.trim().to_owned();
            if !matches!(key.as_str(), "syntax" | "escape" | "check") {
                break;
            }
            if seen.contains(&key) {
                return Err(self.err_at(
                    line.number,
                    1,
                    format!("only one {key} parser directive can be used"),
                ));
            }
            seen.push(key.clone());
            match key.as_str() {
                "escape" => {
                    d.escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(self.err_at(
                                line.number,
                                1,
                                format!("invalid escape token {value:?}: it must be \\ or `"),
                            ))
                        }
                    }
                }
                "syntax" => d.syntax = Some(value),
                _ => d.check = Some(value),
            }
            self.pos += 1;
        }
        Ok(d)
    }

    fn is_comment(text: &str) -> bool {
        text.trim_start().starts_with('#')
    }

    /// If `text` ends with the escape character (trailing blanks allowed), the text before it.
    fn continued(&self, text: &'a str) -> Option<&'a str> {
        let t = text.trim_end_matches([' ', '\t']);
        t.strip_suffix(self.escape)
    }

    fn next_logical(&mut self) -> Option<Logical> {
        while self.pos < self.lines.len() {
            let line = &self.lines[self.pos];
            if line.text.trim().is_empty() || Self::is_comment(line.text) {
                self.pos += 1;
                continue;
            }
            break;
        }
        if self.pos >= self.lines.len() {
            return None;
        }
        let first = self.lines[self.pos].number;
        let mut text = String::new();
        let mut segments = Vec::new();
        let mut last: usize;
        loop {
            let line = &self.lines[self.pos];
            self.pos += 1;
            last = line.number;
            let (body, more) = match self.continued(line.text) {
                Some(b) => (b, true),
                None => (line.text, false),
            };
            let lead = if segments.is_empty() {
                body.len() - body.trim_start().len()
            } else {
                0
            };
            let body = &body[lead..];
            segments.push((text.len(), line.number, lead + 1));
            text.push_str(body);
            if !more {
                break;
            }
            // Skip comments and blank lines inside a continuation, as Docker does.
            while self.pos < self.lines.len()
                && (Self::is_comment(self.lines[self.pos].text)
                    || self.lines[self.pos].text.trim().is_empty())
            {
                self.pos += 1;
            }
            if self.pos >= self.lines.len() {
                break;
            }
        }
        Some(Logical {
            text,
            segments,
            first_line: first,
            last_line: last,
        })
    }

    fn run(mut self) -> Result<Dockerfile, ParseError> {
        let directives = self.directives()?;
        self.escape = directives.escape;
        let mut global_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        while let Some(logical) = self.next_logical() {
            let text = logical.text.clone();
            let kw_end = text.find(char::is_whitespace).unwrap_or(text.len());
            let keyword = text[..kw_end].to_ascii_uppercase();
            let rest_start = kw_end + (text[kw_end..].len() - text[kw_end..].trim_start().len());
            if keyword == "FROM" {
                let stage = self.parse_from(&logical, rest_start, stages.len(), &stages)?;
                stages.push(stage);
                continue;
            }
            let instr = self.parse_instruction(&logical, &keyword, rest_start, false)?;
            match stages.last_mut() {
                Some(stage) => stage.instructions.push(instr),
                None => {
                    if !matches!(instr.kind, InstructionKind::Arg(_)) {
                        return Err(self.err_logical(
                            &logical,
                            0,
                            format!(
                                "{keyword} before FROM: only ARG may come before the first FROM"
                            ),
                        ));
                    }
                    global_args.push(instr);
                }
            }
        }
        if stages.is_empty() {
            return Err(self.err_at(1, 1, "the Dockerfile has no FROM instruction"));
        }
        Ok(Dockerfile {
            directives,
            global_args,
            stages,
        })
    }

    fn parse_from(
        &self,
        l: &Logical,
        rest_start: usize,
        index: usize,
        stages: &[Stage],
    ) -> Result<Stage, ParseError> {
        let (flags, args_start) = self.flags(l, rest_start, &["platform"])?;
        let words = split_words_esc(&l.text[args_start..], self.escape);
        let platform = flags.into_iter().find(|f| f.0 == "platform").map(|f| f.1);
        let (base, name) = match words.as_slice() {
            [b] => (b.1.clone(), None),
            [b, as_, n] if as_.1.eq_ignore_ascii_case("as") => {
                let n_lower = n.1.to_ascii_lowercase();
                let valid = n_lower
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                    && n_lower
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                if !valid {
                    return Err(self.err_logical(
                        l,
                        args_start + n.0,
                        format!("invalid stage name {:?}: it must start with a letter and contain only letters, digits, '_', '-' and '.'", n.1),
                    ));
                }
                if stages.iter().any(|s| s.name.as_deref() == Some(&n_lower)) {
                    return Err(self.err_logical(
                        l,
                        args_start + n.0,
                        format!("duplicate stage name {:?}", n.1),
                    ));
                }
                (b.1.clone(), Some(n_lower))
            }
            [] => {
                return Err(self.err_logical(
                    l,
                    0,
                    "FROM requires an image: FROM [--platform=P] IMAGE [AS NAME]",
                ))
            }
            _ => return Err(self.err_logical(
                l,
                args_start,
                "FROM takes one image and an optional AS NAME: FROM [--platform=P] IMAGE [AS NAME]",
            )),
        };
        Ok(Stage {
            index,
            name,
            base,
            platform,
            line: l.first_line,
            text: l.text.clone(),
            instructions: Vec::new(),
        })
    }

    /// Parses leading `--flag[=value]` words; returns them and the offset of the arguments.
    fn flags(
        &self,
        l: &Logical,
        start: usize,
        allowed: &[&str],
    ) -> Result<(Vec<(String, String)>, usize), ParseError> {
        let mut flags = Vec::new();
        let mut off = start;
        let text = &l.text;
        loop {
            let rest = &text[off..];
            if !rest.starts_with("--") {
                break;
            }
            // A flag word ends at unquoted whitespace.
            let mut end = rest.len();
            let mut quote: Option<char> = None;
            for (i, c) in rest.char_indices() {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == '"' || c == '\'' => quote = Some(c),
                    None if c.is_whitespace() => {
                        end = i;
                        break;
                    }
                    None => {}
                }
            }
            let word = &rest[..end];
            if word == "--" {
                off += end;
                off += text[off..].len() - text[off..].trim_start().len();
                break;
            }
            let body = &word[2..];
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_ascii_lowercase(), unquote(v)),
                None => (body.to_ascii_lowercase(), "true".to_owned()),
            };
            if !allowed.contains(&name.as_str()) {
                return Err(self.err_logical(l, off, format!("unknown flag: --{name}")));
            }
            flags.push((name, value));
            off += end;
            off += text[off..].len() - text[off..].trim_start().len();
        }
        Ok((flags, off))
    }

    fn parse_instruction(
        &mut self,
        l: &Logical,
        keyword: &str,
        rest_start: usize,
        in_onbuild: bool,
    ) -> Result<Instruction, ParseError> {
        let text = l.text.as_str();
        let rest = text[rest_start..].trim_end();
        let none = |p: &Self, what: &str| -> ParseError {
            p.err_logical(l, 0, format!("{keyword} requires {what}"))
        };
        let kind = match keyword {
            "RUN" => {
                let (flags, args) = self.flags(l, rest_start, &["mount", "network", "security"])?;
                let heredocs = self.heredocs(l, args)?;
                let argtext = text[args..].trim_end();
                if argtext.is_empty() {
                    return Err(none(self, "a command"));
                }
                let command = if !heredocs.is_empty() {
                    CommandForm::Shell(fold_heredocs(argtext, &heredocs))
                } else {
                    command_form(argtext)
                };
                let mut mounts = Vec::new();
                let mut network = None;
                let mut security = None;
                for (name, value) in flags {
                    match name.as_str() {
                        "mount" => mounts.push(
                            parse_mount(&value)
                                .map_err(|m| self.err_logical(l, rest_start, m))?,
                        ),
                        "network" => {
                            if !matches!(value.as_str(), "default" | "none" | "host") {
                                return Err(self.err_logical(
                                    l,
                                    rest_start,
                                    format!("invalid --network={value}: expected default, none or host"),
                                ));
                            }
                            network = Some(value)
                        }
                        _ => security = Some(value),
                    }
                }
                InstructionKind::Run(Run {
                    command,
                    mounts,
                    network,
                    security,
                    heredocs,
                })
            }
            "CMD" | "ENTRYPOINT" => {
                if rest.is_empty() {
                    return Err(none(self, "a command"));
                }
                let c = command_form(rest);
                if keyword == "CMD" {
                    InstructionKind::Cmd(c)
                } else {
                    InstructionKind::Entrypoint(c)
                }
            }
            "SHELL" => match command_form(rest) {
                CommandForm::Exec(v) if !v.is_empty() => InstructionKind::Shell(v),
                _ => {
                    return Err(self.err_logical(
                        l,
                        rest_start,
                        "SHELL requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]",
                    ))
                }
            },
            "LABEL" | "ENV" => {
                let pairs = self.name_values(l, keyword, rest_start)?;
                if keyword == "LABEL" {
                    InstructionKind::Label(pairs)
                } else {
                    InstructionKind::Env(pairs)
                }
            }
            "MAINTAINER" => {
                if rest.is_empty() {
                    return Err(none(self, "a name"));
                }
                InstructionKind::Maintainer(rest.to_owned())
            }
            "EXPOSE" => {
                let words: Vec<String> = split_words_esc(rest, self.escape).into_iter().map(|w| w.1).collect();
                if words.is_empty() {
                    return Err(none(self, "at least one port"));
                }
                InstructionKind::Expose(words)
            }
            "ADD" | "COPY" => {
                let allowed: &[&str] = if keyword == "COPY" {
                    &["from", "chown", "chmod", "link", "exclude", "parents"]
                } else {
                    &[
                        "chown",
                        "chmod",
                        "link",
                        "exclude",
                        "keep-git-dir",
                        "checksum",
                        "parents",
                    ]
                };
                let (flags, args) = self.flags(l, rest_start, allowed)?;
                let heredocs = self.heredocs(l, args)?;
                let argtext = text[args..].trim_end();
                let mut words: Vec<String> = match command_form(argtext) {
                    CommandForm::Exec(v) => v,
                    CommandForm::Shell(s) => split_words_esc(&s, self.escape).into_iter().map(|w| w.1).collect(),
                };
                let mut inline = Vec::new();
                if !heredocs.is_empty() {
                    // Heredoc words become inline files named after their delimiter.
                    words.retain(|w| {
                        if let Some(h) = parse_heredoc_word(w) {
                            inline.push(h.1);
                            false
                        } else {
                            true
                        }
                    });
                }
                if words.is_empty() || (words.len() < 2 && heredocs.is_empty()) {
                    return Err(none(self, "at least one source and a destination"));
                }
                let dest = words.pop().unwrap_or_default();
                let mut spec = CopySpec {
                    sources: words,
                    dest,
                    from: None,
                    chown: None,
                    chmod: None,
                    link: false,
                    exclude: Vec::new(),
                    parents: false,
                    keep_git_dir: false,
                    checksum: None,
                    heredocs,
                };
                for (name, value) in flags {
                    let truthy = value != "false";
                    match name.as_str() {
                        "from" => spec.from = Some(value),
                        "chown" => spec.chown = Some(value),
                        "chmod" => spec.chmod = Some(value),
                        "link" => spec.link = truthy,
                        "exclude" => spec.exclude.push(value),
                        "parents" => spec.parents = truthy,
                        "keep-git-dir" => spec.keep_git_dir = truthy,
                        _ => spec.checksum = Some(value),
                    }
                }
                if keyword == "COPY" {
                    InstructionKind::Copy(spec)
                } else {
                    InstructionKind::Add(spec)
                }
            }
            "VOLUME" => {
                let words = match command_form(rest) {
                    CommandForm::Exec(v) => v,
                    CommandForm::Shell(s) => split_words_esc(&s, self.escape).into_iter().map(|w| w.1).collect(),
                };
                if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                    return Err(none(self, "at least one non-empty path"));
                }
                InstructionKind::Volume(words)
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(none(self, "exactly one argument"));
                }
                match keyword {
                    "USER" => InstructionKind::User(rest.to_owned()),
                    "WORKDIR" => InstructionKind::Workdir(rest.to_owned()),
                    _ => InstructionKind::Stopsignal(rest.to_owned()),
                }
            }
            "ARG" => {
                let words = split_words_esc(rest, self.escape);
                if words.is_empty() {
                    return Err(none(self, "at least one argument"));
                }
                let mut args = Vec::new();
                for (off, w) in words {
                    let (name, default) = match w.split_once('=') {
                        Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                        None => (w.clone(), None),
                    };
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(self.err_logical(
                            l,
                            rest_start + off,
                            format!("invalid ARG name {name:?}"),
                        ));
                    }
                    args.push((name, default));
                }
                InstructionKind::Arg(args)
            }
            "ONBUILD" => {
                if in_onbuild {
                    return Err(self.err_logical(l, 0, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
                }
                let inner_kw_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let inner = rest[..inner_kw_end].to_ascii_uppercase();
                match inner.as_str() {
                    "" => return Err(none(self, "an instruction")),
                    "ONBUILD" => {
                        return Err(self.err_logical(
                            l,
                            rest_start,
                            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        ))
                    }
                    "FROM" | "MAINTAINER" => {
                        return Err(self.err_logical(
                            l,
                            rest_start,
                            format!("{inner} isn't allowed as an ONBUILD trigger"),
                        ))
                    }
                    k if !KNOWN.contains(&k) => {
                        return Err(self.err_logical(
                            l,
                            rest_start,
                            format!("unknown instruction {:?} in ONBUILD", &rest[..inner_kw_end]),
                        ))
                    }
                    _ => {}
                }
                InstructionKind::Onbuild(rest.to_owned())
            }
            "HEALTHCHECK" => {
                let (flags, args) = self.flags(
                    l,
                    rest_start,
                    &["interval", "timeout", "start-period", "start-interval", "retries"],
                )?;
                let argtext = text[args..].trim_end();
                let kw_end = argtext.find(char::is_whitespace).unwrap_or(argtext.len());
                let sub = argtext[..kw_end].to_ascii_uppercase();
                match sub.as_str() {
                    "NONE" => {
                        if !flags.is_empty() || argtext[kw_end..].trim() != "" {
                            return Err(self.err_logical(l, args, "HEALTHCHECK NONE takes no arguments"));
                        }
                        InstructionKind::Healthcheck(Healthcheck::None)
                    }
                    "CMD" => {
                        let cmdtext = argtext[kw_end..].trim();
                        if cmdtext.is_empty() {
                            return Err(none(self, "a command after CMD"));
                        }
                        let mut h = (None, None, None, None, None);
                        for (name, value) in flags {
                            if name == "retries" {
                                let n: u32 = value.parse().map_err(|_| {
                                    self.err_logical(l, rest_start, format!("invalid --retries={value}: expected a number"))
                                })?;
                                h.4 = Some(n);
                                continue;
                            }
                            let d = parse_duration(&value).ok_or_else(|| {
                                self.err_logical(l, rest_start, format!("invalid --{name}={value}: expected a duration like 30s"))
                            })?;
                            match name.as_str() {
                                "interval" => h.0 = Some(d),
                                "timeout" => h.1 = Some(d),
                                "start-period" => h.2 = Some(d),
                                _ => h.3 = Some(d),
                            }
                        }
                        InstructionKind::Healthcheck(Healthcheck::Cmd {
                            command: command_form(cmdtext),
                            interval: h.0,
                            timeout: h.1,
                            start_period: h.2,
                            start_interval: h.3,
                            retries: h.4,
                        })
                    }
                    _ => {
                        return Err(self.err_logical(
                            l,
                            args,
                            "HEALTHCHECK expects NONE or [OPTIONS] CMD command",
                        ))
                    }
                }
            }
            _ => {
                let word = text.split_whitespace().next().unwrap_or("");
                return Err(self.err_logical(l, 0, format!("unknown instruction {word:?}")));
            }
        };
        Ok(Instruction {
            line: l.first_line,
            end_line: l.last_line.max(self.pos),
            text: l.text.trim_end().to_owned(),
            kind,
        })
    }

    /// Reads the bodies of the heredocs named in `l.text[args..]`, in order.
    fn heredocs(&mut self, l: &Logical, args: usize) -> Result<Vec<Heredoc>, ParseError> {
        let mut out = Vec::new();
        for (off, word) in split_words_esc(&l.text[args..], self.escape) {
            // A heredoc may be glued to a redirect or command (`cat <<EOF>x`): look inside.
            let Some(idx) = word.find("<<") else { continue };
            let Some((consumed, spec)) = parse_heredoc_word(&word[idx..]) else {
                continue;
            };
            let _ = consumed;
            let (line, col) = l.position(args + off + idx);
            let mut content = String::new();
            let mut closed = false;
            while self.pos < self.lines.len() {
                let body = self.lines[self.pos].text;
                self.pos += 1;
                let cmp = if spec.strip_tabs {
                    body.trim_start_matches('\t')
                } else {
                    body
                };
                if cmp == spec.name {
                    closed = true;
                    break;
                }
                content.push_str(cmp);
                content.push('\n');
            }
            if !closed {
                return Err(self.err_at(
                    line,
                    col,
                    format!("unterminated heredoc: no line {:?} closes it", spec.name),
                ));
            }
            out.push(Heredoc { content, ..spec });
        }
        Ok(out)
    }

    fn name_values(
        &self,
        l: &Logical,
        keyword: &str,
        start: usize,
    ) -> Result<Vec<(String, String)>, ParseError> {
        let rest = l.text[start..].trim_end();
        let words = split_words_esc(rest, self.escape);
        if words.is_empty() {
            return Err(self.err_logical(
                l,
                0,
                format!("{keyword} requires at least one argument"),
            ));
        }
        if !words[0].1.contains('=') {
            // Old form: `ENV name value with spaces`.
            if keyword == "LABEL" {
                return Err(self.err_logical(l, start, "LABEL requires name=value pairs"));
            }
            let name = words[0].1.clone();
            let value_start = words.get(1).map(|w| w.0);
            let Some(vs) = value_start else {
                return Err(self.err_logical(
                    l,
                    start,
                    format!("{keyword} {name} requires a value: {keyword} name=value"),
                ));
            };
            return Ok(vec![(name, rest[vs..].to_owned())]);
        }
        let mut pairs = Vec::new();
        for (off, w) in words {
            let Some((n, v)) = w.split_once('=') else {
                return Err(self.err_logical(
                    l,
                    start + off,
                    format!("{keyword} names can not be blank and need a value: expected name=value, got {w:?}"),
                ));
            };
            if n.is_empty() {
                return Err(self.err_logical(
                    l,
                    start + off,
                    format!("{keyword} names can not be blank"),
                ));
            }
            pairs.push((n.to_owned(), v.to_owned()));
        }
        Ok(pairs)
    }
}

/// Splits at unquoted whitespace, keeping quotes and escapes (they are removed at expansion).
/// Returns (byte offset, word).
pub(crate) fn split_words(s: &str) -> Vec<(usize, String)> {
    split_words_esc(s, '\\')
}

/// [`split_words`] with the file's escape character.
pub(crate) fn split_words_esc(s: &str, escape: char) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    escaped = true;
                }
                cur.push(c);
            }
            None => {
                if c.is_whitespace() {
                    if let Some(st) = start.take() {
                        out.push((st, std::mem::take(&mut cur)));
                    }
                    continue;
                }
                if start.is_none() {
                    start = Some(i);
                }
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    escaped = true;
                }
                cur.push(c);
            }
        }
    }
    if let Some(st) = start {
        out.push((st, cur));
    }
    out
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].to_owned()
    } else {
        v.to_owned()
    }
}

/// The exec form when `s` is a JSON array of strings, else the shell form.
pub fn command_form(s: &str) -> CommandForm {
    let t = s.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return CommandForm::Exec(v);
        }
    }
    CommandForm::Shell(t.to_owned())
}

/// Parses `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'` at the start of `w`.
fn parse_heredoc_word(w: &str) -> Option<(usize, Heredoc)> {
    let rest = w.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (quoted, name_part) = match rest.chars().next()? {
        q @ ('"' | '\'') => {
            let inner = &rest[1..];
            let end = inner.find(q)?;
            (true, &inner[..end])
        }
        _ => {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .unwrap_or(rest.len());
            (false, &rest[..end])
        }
    };
    if name_part.is_empty()
        || !name_part.chars().next()?.is_ascii_alphabetic() && !name_part.starts_with('_')
    {
        return None;
    }
    Some((
        0,
        Heredoc {
            name: name_part.to_owned(),
            content: String::new(),
            expand: !quoted,
            strip_tabs,
        },
    ))
}

/// Turns a RUN line with heredocs into the script the shell runs: a lone heredoc is the
/// script itself; otherwise the line is followed by the bodies and delimiters, as a shell
/// reads them.
fn fold_heredocs(line: &str, heredocs: &[Heredoc]) -> String {
    let words = split_words(line);
    if words.len() == 1 && heredocs.len() == 1 && parse_heredoc_word(&words[0].1).is_some() {
        return heredocs[0].content.clone();
    }
    let mut s = line.to_owned();
    s.push('\n');
    for h in heredocs {
        s.push_str(&h.content);
        s.push_str(&h.name);
        s.push('\n');
    }
    s
}

/// Parses a `--mount` value (CSV of key=value).
fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut kv: Vec<(String, String)> = Vec::new();
    for field in value.split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        match field.split_once('=') {
            Some((k, v)) => kv.push((k.trim().to_ascii_lowercase(), v.trim().to_owned())),
            None => kv.push((field.to_ascii_lowercase(), "true".into())),
        }
    }
    let get = |k: &[&str]| {
        kv.iter()
            .find(|(n, _)| k.contains(&n.as_str()))
            .map(|(_, v)| v.clone())
    };
    let flag = |k: &[&str]| get(k).is_some_and(|v| v != "false");
    let num = |k: &str, d: u32, radix: u32| -> Result<u32, String> {
        match get(&[k]) {
            None => Ok(d),
            Some(v) => u32::from_str_radix(&v, radix)
                .map_err(|_| format!("invalid --mount {k}={v}: expected a number")),
        }
    };
    let known = |allowed: &[&str]| -> Result<(), String> {
        for (k, _) in &kv {
            if !allowed.contains(&k.as_str()) {
                return Err(format!("unknown --mount option {k:?}"));
            }
        }
        Ok(())
    };
    let target = get(&["target", "dst", "destination"]);
    match get(&["type"]).as_deref().unwrap_or("bind") {
        "secret" => {
            known(&[
                "type",
                "id",
                "target",
                "dst",
                "destination",
                "required",
                "mode",
                "uid",
                "gid",
                "env",
            ])?;
            let id = match (get(&["id"]), &target) {
                (Some(id), _) => id,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or(t).to_owned(),
                (None, None) => return Err("--mount=type=secret needs id= or target=".into()),
            };
            Ok(Mount::Secret {
                target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required: flag(&["required"]),
                mode: num("mode", 0o400, 8)?,
                uid: num("uid", 0, 10)?,
                gid: num("gid", 0, 10)?,
            })
        }
        "cache" => {
            known(&[
                "type",
                "id",
                "target",
                "dst",
                "destination",
                "readonly",
                "ro",
                "sharing",
                "mode",
                "uid",
                "gid",
                "from",
                "source",
                "src",
            ])?;
            let target = target.ok_or("--mount=type=cache needs target=")?;
            Ok(Mount::Cache {
                id: get(&["id"]).unwrap_or_else(|| target.clone()),
                target,
                readonly: flag(&["readonly", "ro"]),
                sharing: get(&["sharing"]).unwrap_or_else(|| "shared".into()),
                mode: num("mode", 0o755, 8)?,
                uid: num("uid", 0, 10)?,
                gid: num("gid", 0, 10)?,
            })
        }
        "bind" => {
            known(&[
                "type",
                "target",
                "dst",
                "destination",
                "source",
                "src",
                "from",
                "rw",
                "readwrite",
                "readonly",
                "ro",
            ])?;
            Ok(Mount::Bind {
                target: target.ok_or("--mount=type=bind needs target=")?,
                source: get(&["source", "src"]).unwrap_or_else(|| "/".into()),
                from: get(&["from"]),
                rw: flag(&["rw", "readwrite"]),
            })
        }
        "tmpfs" => {
            known(&["type", "target", "dst", "destination", "size"])?;
            Ok(Mount::Tmpfs {
                target: target.ok_or("--mount=type=tmpfs needs target=")?,
            })
        }
        other => Err(format!(
            "unsupported --mount type {other:?}: expected secret, cache, bind or tmpfs"
        )),
    }
}

/// Parses Go-style durations (`30s`, `1m30s`, `500ms`, `1h`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += (n * mult) as u64;
    }
    Some(total)
}

#[cfg(test)]
mod tests;
