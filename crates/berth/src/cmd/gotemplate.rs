//! The Go `text/template` subset that `--format` takes, checked like Docker's CLI: a template
//! that does not parse is refused before anything runs (`template: :1: unclosed action`), a
//! field that is not there is an error (`map has no entry for key "X"`), not a blank.
//!
//! Supported: text, `{{.A.B}}`, `{{.}}`, `{{$}}`, `{{$.A}}`, string and number literals,
//! pipelines (`{{.X | json}}`), parentheses, `{{- -}}` trimming, `range`, `if`, `with`,
//! `else` and `end`, and the functions Docker's templates use most: `json`, `join`, `split`,
//! `lower`, `upper`, `title`, `truncate`, `pad`, `print`, `println`, `printf`, `len`, `index`,
//! `eq`, `ne`, `not`, `and`, `or`.
//!
//! Docker's listings (`ps`, `images`, `stats`, ...) call methods with a key on their rows,
//! `{{.Label "com.example.x"}}`. Rows here are JSON, so a field whose value is a map, called
//! with one string argument, indexes that map; a missing key is an empty string, as the
//! method returns. [`Template::execute_header`] runs a template for a table's header the way
//! Docker's CLI does: on a map of column titles, with the string functions passing their
//! value through and a keyed call giving the key's title.

use std::fmt;

use serde_json::Value;

/// A parse or execution error, worded as Go's `text/template` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

const FUNCS: &[&str] = &[
    "json", "join", "split", "lower", "upper", "title", "truncate", "pad", "print", "println",
    "printf", "len", "index", "eq", "ne", "not", "and", "or",
];

/// The functions whose value a table header shows untouched (Docker's `HeaderFunctions`).
const HEADER_FUNCS: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate",
];

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    text: String,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    Range(Pipe, Vec<Node>, Vec<Node>),
    If(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipe {
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// A field chain on dot (`.A.B`) or on the root (`$.A.B`); `pos` is its offset in the
    /// template, `src` the text as written.
    Field {
        root: bool,
        keys: Vec<String>,
        pos: usize,
        src: String,
    },
    Literal(Value),
    Func(String),
    Sub(Pipe),
}

#[derive(Debug)]
enum Tok {
    Arg(Arg),
    Pipe,
    Open,
    Close,
    Keyword(&'static str),
}

impl Template {
    /// Parses `text` (with `\t` and `\n` written as escapes taken as tabs and newlines, as
    /// Docker's `--format` does).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut items: Vec<Item> = Vec::new();
        let mut rest = 0usize;
        while let Some(off) = text[rest..].find("{{") {
            let start = rest + off;
            let mut lit = text[rest..start].to_string();
            let mut inner_start = start + 2;
            if text[inner_start..].starts_with("- ") {
                lit = lit.trim_end().to_string();
                inner_start += 1;
            }
            items.push(Item::Text(lit));
            let Some(close) = text[inner_start..].find("}}") else {
                // `{{.Name}` is Go's "unexpected "}" in operand", `{{.Name` unclosed.
                let why = if text[inner_start..].contains('}') {
                    "unexpected \"}\" in operand"
                } else {
                    "unclosed action"
                };
                return Err(parse_error(&text, start, why));
            };
            let mut inner_end = inner_start + close;
            let mut trim_next = false;
            if inner_end > inner_start && text[..inner_end].ends_with(" -") {
                inner_end -= 1;
                trim_next = true;
            }
            let toks = lex(&text, inner_start, inner_end)?;
            items.push(Item::Action(toks, start));
            rest = inner_start + close + 2;
            if trim_next {
                let skipped = text[rest..].len() - text[rest..].trim_start().len();
                rest += skipped;
            }
        }
        items.push(Item::Text(text[rest..].to_string()));
        let mut it = items.into_iter().peekable();
        let (nodes, end) = parse_list(&text, &mut it)?;
        match end {
            ListEnd::Eof => Ok(Template { nodes, text }),
            ListEnd::End(pos) => Err(parse_error(&text, pos, "unexpected {{end}}")),
            ListEnd::Else(pos) => Err(parse_error(&text, pos, "unexpected {{else}}")),
        }
    }

    /// Runs the template on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let ex = Exec {
            root: data,
            text: &self.text,
            header: false,
        };
        ex.walk(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Runs the template for a table's header, as Docker's CLI: on `titles` (field name →
    /// column title), where `json`, `split`, `join`, `title`, `lower`, `upper` and
    /// `truncate` give back their value untouched, `.Field "a.b-c"` is the key's last dotted
    /// part with `-` and `_` as spaces (`b c`), and a field with no title is `<no value>`.
    /// Docker ignores errors in the header: what was rendered before one stays.
    pub fn execute_header(&self, titles: &Value) -> String {
        let mut out = String::new();
        let ex = Exec {
            root: titles,
            text: &self.text,
            header: true,
        };
        let _ = ex.walk(&self.nodes, titles, &mut out);
        out
    }
}

enum Item {
    Text(String),
    Action(Vec<Tok>, usize),
}

/// How a list of nodes ended.
enum ListEnd {
    Eof,
    End(usize),
    Else(usize),
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].matches('\n').count() + 1
}

fn parse_error(text: &str, pos: usize, msg: &str) -> TemplateError {
    TemplateError(format!("template: :{}: {msg}", line_of(text, pos)))
}

fn lex(text: &str, from: usize, to: usize) -> Result<Vec<Tok>, TemplateError> {
    let b = text.as_bytes();
    let mut i = from;
    let mut toks = Vec::new();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < to {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            b')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            b'.' | b'$' => {
                let start = i;
                let root = c == b'$';
                if root {
                    i += 1;
                }
                let mut keys = Vec::new();
                while i < to && b[i] == b'.' {
                    let k0 = i + 1;
                    let mut j = k0;
                    while j < to && ident(b[j]) {
                        j += 1;
                    }
                    if j == k0 {
                        if !keys.is_empty() || (i + 1 < to && !b" |)".contains(&b[i + 1])) {
                            return Err(parse_error(
                                text,
                                i,
                                &format!("unexpected {:?} in operand", char::from(b[i + 1])),
                            ));
                        }
                        i += 1;
                        break;
                    }
                    keys.push(text[k0..j].to_string());
                    i = j;
                }
                toks.push(Tok::Arg(Arg::Field {
                    root,
                    keys,
                    pos: start,
                    src: text[start..i].to_string(),
                }));
            }
            b'"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&ch) = b.get(j).filter(|_| j < to) else {
                        return Err(parse_error(text, i, "unterminated quoted string"));
                    };
                    match ch {
                        b'"' => break,
                        b'\\' if j + 1 < to => {
                            s.push(match b[j + 1] {
                                b'n' => '\n',
                                b't' => '\t',
                                other => char::from(other),
                            });
                            j += 2;
                        }
                        _ => {
                            let ch = text[j..].chars().next().unwrap_or(' ');
                            s.push(ch);
                            j += ch.len_utf8();
                        }
                    }
                }
                toks.push(Tok::Arg(Arg::Literal(Value::String(s))));
                i = j + 1;
            }
            b'`' => {
                let Some(end) = text[i + 1..to].find('`') else {
                    return Err(parse_error(text, i, "unterminated raw quoted string"));
                };
                toks.push(Tok::Arg(Arg::Literal(Value::String(
                    text[i + 1..i + 1 + end].to_string(),
                ))));
                i += end + 2;
            }
            b'0'..=b'9' | b'-' => {
                let start = i;
                i += 1;
                while i < to && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                let n: Value = serde_json::from_str(&text[start..i]).map_err(|_| {
                    parse_error(
                        text,
                        start,
                        &format!("bad number syntax: {:?}", &text[start..i]),
                    )
                })?;
                toks.push(Tok::Arg(Arg::Literal(n)));
            }
            c if ident(c) => {
                let start = i;
                while i < to && ident(b[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                toks.push(match word {
                    "range" => Tok::Keyword("range"),
                    "if" => Tok::Keyword("if"),
                    "with" => Tok::Keyword("with"),
                    "else" => Tok::Keyword("else"),
                    "end" => Tok::Keyword("end"),
                    "true" => Tok::Arg(Arg::Literal(Value::Bool(true))),
                    "false" => Tok::Arg(Arg::Literal(Value::Bool(false))),
                    "nil" => Tok::Arg(Arg::Literal(Value::Null)),
                    f if FUNCS.contains(&f) => Tok::Arg(Arg::Func(f.to_string())),
                    f => {
                        return Err(parse_error(
                            text,
                            start,
                            &format!("function {f:?} not defined"),
                        ))
                    }
                });
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                return Err(parse_error(
                    text,
                    i,
                    &format!("unexpected {ch:?} in command"),
                ));
            }
        }
    }
    Ok(toks)
}

fn parse_list(
    text: &str,
    it: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<(Vec<Node>, ListEnd), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(item) = it.next() {
        let (toks, pos) = match item {
            Item::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
                continue;
            }
            Item::Action(toks, pos) => (toks, pos),
        };
        match toks.first() {
            Some(Tok::Keyword("end")) => return Ok((nodes, ListEnd::End(pos))),
            Some(Tok::Keyword("else")) => return Ok((nodes, ListEnd::Else(pos))),
            Some(Tok::Keyword(kw)) => {
                let kw = *kw;
                let pipe = parse_pipe(text, &mut toks.into_iter().skip(1).peekable(), pos)?;
                let (body, end) = parse_list(text, it)?;
                let else_body = match end {
                    ListEnd::End(_) => Vec::new(),
                    ListEnd::Else(_) => match parse_list(text, it)? {
                        (b, ListEnd::End(_)) => b,
                        (_, ListEnd::Else(p)) => {
                            return Err(parse_error(text, p, "expected end; found {{else}}"))
                        }
                        (_, ListEnd::Eof) => return Err(parse_error(text, pos, "unexpected EOF")),
                    },
                    ListEnd::Eof => return Err(parse_error(text, pos, "unexpected EOF")),
                };
                nodes.push(match kw {
                    "range" => Node::Range(pipe, body, else_body),
                    "if" => Node::If(pipe, body, else_body),
                    _ => Node::With(pipe, body, else_body),
                });
            }
            _ => {
                let pipe = parse_pipe(text, &mut toks.into_iter().peekable(), pos)?;
                nodes.push(Node::Action(pipe));
            }
        }
    }
    Ok((nodes, ListEnd::Eof))
}

fn parse_pipe(
    text: &str,
    toks: &mut std::iter::Peekable<impl Iterator<Item = Tok>>,
    pos: usize,
) -> Result<Pipe, TemplateError> {
    let mut cmds = Vec::new();
    let mut cur: Vec<Arg> = Vec::new();
    while let Some(t) = toks.next() {
        match t {
            Tok::Arg(a) => cur.push(a),
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err(parse_error(text, pos, "missing value for command"));
                }
                cmds.push(std::mem::take(&mut cur));
            }
            Tok::Open => {
                let mut depth = 1;
                let mut inner = Vec::new();
                for t in toks.by_ref() {
                    match t {
                        Tok::Open => depth += 1,
                        Tok::Close => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    inner.push(t);
                }
                if depth != 0 {
                    return Err(parse_error(text, pos, "unclosed left paren"));
                }
                cur.push(Arg::Sub(parse_pipe(
                    text,
                    &mut inner.into_iter().peekable(),
                    pos,
                )?));
            }
            Tok::Close => return Err(parse_error(text, pos, "unexpected right paren")),
            Tok::Keyword(k) => {
                return Err(parse_error(
                    text,
                    pos,
                    &format!("unexpected <{k}> in command"),
                ))
            }
        }
    }
    if cur.is_empty() {
        return Err(parse_error(text, pos, "missing value for command"));
    }
    cmds.push(cur);
    Ok(Pipe { cmds })
}

struct Exec<'a> {
    root: &'a Value,
    text: &'a str,
    /// Rendering a table header ([`Template::execute_header`]).
    header: bool,
}

impl Exec<'_> {
    fn walk(&self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => out.push_str(&go_string(&self.pipe(p, dot)?)),
                Node::If(p, body, els) => {
                    let v = self.pipe(p, dot)?;
                    self.walk(if truthy(&v) { body } else { els }, dot, out)?;
                }
                Node::With(p, body, els) => {
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.walk(body, &v, out)?;
                    } else {
                        self.walk(els, dot, out)?;
                    }
                }
                Node::Range(p, body, els) => {
                    let v = self.pipe(p, dot)?;
                    let items: Vec<Value> = match v {
                        Value::Array(a) => a,
                        Value::Object(m) => {
                            let mut kv: Vec<_> = m.into_iter().collect();
                            kv.sort_by(|a, b| a.0.cmp(&b.0));
                            kv.into_iter().map(|(_, v)| v).collect()
                        }
                        Value::Null => Vec::new(),
                        other => {
                            return Err(TemplateError(format!(
                                "template: :1: range can't iterate over {}",
                                go_string(&other)
                            )))
                        }
                    };
                    if items.is_empty() {
                        self.walk(els, dot, out)?;
                    }
                    for item in &items {
                        self.walk(body, item, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn pipe(&self, p: &Pipe, dot: &Value) -> Result<Value, TemplateError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn command(
        &self,
        cmd: &[Arg],
        dot: &Value,
        prev: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(first) = cmd.first() else {
            return Ok(Value::Null);
        };
        if let Arg::Func(name) = first {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            args.extend(prev);
            if self.header && HEADER_FUNCS.contains(&name.as_str()) {
                return Ok(args.into_iter().next().unwrap_or(Value::Null));
            }
            return call(name, &args).map_err(|e| {
                TemplateError(format!(
                    "template: :{}: executing \"\" at <{name}>: error calling {name}: {e}",
                    line_of(self.text, 0)
                ))
            });
        }
        if cmd.len() > 1 || prev.is_some() {
            return self.keyed(first, &cmd[1..], dot, prev);
        }
        self.arg(first, dot)
    }

    /// Go's execution error at the operand `src` written at `pos`.
    fn exec_error(&self, pos: usize, src: &str, why: &str) -> TemplateError {
        let line_start = self.text[..pos].rfind('\n').map_or(0, |i| i + 1);
        TemplateError(format!(
            "template: :{}:{}: executing \"\" at <{src}>: {why}",
            line_of(self.text, pos),
            pos - line_start
        ))
    }

    /// `.Field "key"` (or `"key" | .Field`): Docker's keyed methods (`.Label "k"`) on a
    /// field that holds a map; the key indexes the map, a missing key is "".
    fn keyed(
        &self,
        field: &Arg,
        args: &[Arg],
        dot: &Value,
        prev: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Arg::Field { pos, src, .. } = field else {
            return Err(TemplateError(format!(
                "template: :1: can't give argument to non-function {}",
                arg_text(field)
            )));
        };
        let mut values = Vec::new();
        for a in args {
            values.push(self.arg(a, dot)?);
        }
        values.extend(prev);
        let fail = |why: String| self.exec_error(*pos, src, &why);
        let key = match values.as_slice() {
            [Value::String(key)] => key,
            [other] => {
                return Err(fail(format!(
                    "wrong type for value; expected string; got {}",
                    go_type(other)
                )))
            }
            _ => {
                return Err(fail(format!(
                    "wrong number of args for {}: want 1 got {}",
                    src.rsplit('.').next().unwrap_or(src),
                    values.len()
                )))
            }
        };
        if self.header {
            let last = key.rsplit('.').next().unwrap_or(key);
            return Ok(Value::String(last.replace(['-', '_'], " ")));
        }
        match self.arg(field, dot)? {
            Value::Object(m) => Ok(m
                .get(key)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()))),
            _ => Err(fail(format!("can't give argument to non-function {src}"))),
        }
    }

    fn arg(&self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        match a {
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Sub(p) => self.pipe(p, dot),
            Arg::Func(name) => call(name, &[]).map_err(TemplateError),
            Arg::Field {
                root,
                keys,
                pos,
                src,
            } => {
                let mut cur = if *root { self.root } else { dot };
                if self.header {
                    // Titles are a flat map: anything else has no title.
                    for k in keys {
                        cur = cur.get(k).unwrap_or(&Value::Null);
                    }
                    return Ok(cur.clone());
                }
                for k in keys {
                    let fail = |why: String| self.exec_error(*pos, src, &why);
                    cur = match cur {
                        Value::Object(m) => m
                            .get(k)
                            .ok_or_else(|| fail(format!("map has no entry for key {k:?}")))?,
                        Value::Null => {
                            return Err(fail(format!("nil pointer evaluating interface {{}}.{k}")))
                        }
                        other => {
                            return Err(fail(format!(
                                "can't evaluate field {k} in type {}",
                                go_type(other)
                            )))
                        }
                    };
                }
                Ok(cur.clone())
            }
        }
    }
}

/// An argument as written, for error messages.
fn arg_text(a: &Arg) -> String {
    match a {
        Arg::Field { src, .. } => src.clone(),
        Arg::Literal(v) => serde_json::to_string(v).unwrap_or_default(),
        Arg::Func(name) => name.clone(),
        Arg::Sub(_) => "(...)".into(),
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn want_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => go_string(other),
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let s = |v: String| Ok(Value::String(v));
    match name {
        "json" => {
            arity(1)?;
            s(serde_json::to_string(&args[0]).unwrap_or_default())
        }
        "join" => {
            arity(2)?;
            let parts: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(want_str).collect(),
                other => vec![want_str(other)],
            };
            s(parts.join(&want_str(&args[1])))
        }
        "split" => {
            arity(2)?;
            Ok(Value::Array(
                want_str(&args[0])
                    .split(want_str(&args[1]).as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "lower" => {
            arity(1)?;
            s(want_str(&args[0]).to_lowercase())
        }
        "upper" => {
            arity(1)?;
            s(want_str(&args[0]).to_uppercase())
        }
        "title" => {
            arity(1)?;
            let t = want_str(&args[0]);
            let mut out = String::new();
            let mut start = true;
            for c in t.chars() {
                out.extend(if start {
                    c.to_uppercase().collect::<Vec<_>>()
                } else {
                    vec![c]
                });
                start = c.is_whitespace();
            }
            s(out)
        }
        "truncate" => {
            arity(2)?;
            let n = args[1].as_u64().unwrap_or(0) as usize;
            s(want_str(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            arity(3)?;
            let l = " ".repeat(args[1].as_u64().unwrap_or(0) as usize);
            let r = " ".repeat(args[2].as_u64().unwrap_or(0) as usize);
            s(format!("{l}{}{r}", want_str(&args[0])))
        }
        "print" => s(args.iter().map(want_str).collect::<Vec<_>>().join("")),
        "println" => s(format!(
            "{}\n",
            args.iter().map(want_str).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let Some(fmt) = args.first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            s(printf(&want_str(fmt), &args[1..]))
        }
        "len" => {
            arity(1)?;
            let n = match &args[0] {
                Value::String(x) => x.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                other => return Err(format!("len of type {}", go_type(other))),
            };
            Ok(Value::from(n))
        }
        "index" => {
            let Some((base, keys)) = args.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut cur = base.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Object(m), key) => {
                        m.get(&want_str(key)).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        a.get(i)
                            .cloned()
                            .ok_or(format!("index out of range: {i}"))?
                    }
                    (other, _) => {
                        return Err(format!("can't index item of type {}", go_type(other)))
                    }
                };
            }
            Ok(cur)
        }
        "eq" | "ne" => {
            arity(2)?;
            let eq =
                args[0] == args[1] || (args[0].is_number() && args[0].as_f64() == args[1].as_f64());
            Ok(Value::Bool(eq == (name == "eq")))
        }
        "not" => {
            arity(1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        other => Err(format!("function {other:?} not defined")),
    }
}

/// `%s`, `%d`, `%v`, `%q` and `%%`; other verbs print their argument as `%v` would.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!(
                "{:?}",
                args.next().map(want_str).unwrap_or_default()
            )),
            Some(_) => out.push_str(&args.next().map(want_str).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// How Go's template prints a value: strings bare, arrays `[a b]`, maps `map[k:v]`, null
/// `<no value>`.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut kv: Vec<_> = m.iter().collect();
            kv.sort_by(|a, b| a.0.cmp(b.0));
            format!(
                "map[{}]",
                kv.iter()
                    .map(|(k, v)| format!("{k}:{}", go_string(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        other => other.to_string(),
    }
}

/// `--format` of a verb that prints one document (`info`, `version`): `json` prints `data`
/// as one JSON line, another template runs against it (Docker's error lines, status 1).
/// `None` when no format was given: the caller prints its own layout.
pub fn print_formatted(format: Option<&str>, data: &Value) -> Option<i32> {
    let f = format.filter(|f| !f.is_empty())?;
    if f == "json" {
        println!("{data}");
        return Some(0);
    }
    let t = match Template::parse(f) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("template parsing error: {e}");
            return Some(1);
        }
    };
    match t.execute(data) {
        Ok(s) => {
            println!("{s}");
            Some(0)
        }
        Err(e) => {
            eprintln!("template: {e}");
            Some(1)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> Result<String, String> {
        Template::parse(t)
            .and_then(|t| t.execute(v))
            .map_err(|e| e.0)
    }

    #[test]
    fn fields_pipelines_and_functions() {
        let v = json!({"Name": "/web", "State": {"Pid": 42, "Running": true},
            "Args": ["a", "b"], "Labels": {"z": "1", "a": "2"}});
        assert_eq!(run("{{.Name}} {{.State.Pid}}", &v).unwrap(), "/web 42");
        assert_eq!(run("{{json .Args}}", &v).unwrap(), r#"["a","b"]"#);
        assert_eq!(run("{{.Args | json}}", &v).unwrap(), r#"["a","b"]"#);
        assert_eq!(run("{{join .Args \",\"}}", &v).unwrap(), "a,b");
        assert_eq!(run("{{range .Args}}<{{.}}>{{end}}", &v).unwrap(), "<a><b>");
        assert_eq!(run("{{range $.Labels}}{{.}}{{end}}", &v).unwrap(), "21");
        assert_eq!(run("{{index .Labels \"z\"}}", &v).unwrap(), "1");
        assert_eq!(
            run("{{if .State.Running}}up{{else}}down{{end}}", &v).unwrap(),
            "up"
        );
        assert_eq!(run("{{with .State}}{{.Pid}}{{end}}", &v).unwrap(), "42");
        assert_eq!(run("{{upper (index .Args 1)}}", &v).unwrap(), "B");
        assert_eq!(run("a {{- \" b \" -}} c", &v).unwrap(), "a b c");
        assert_eq!(run("{{.Labels}}", &v).unwrap(), "map[a:2 z:1]");
        assert_eq!(
            run("{{printf \"%s=%d\" .Name .State.Pid}}", &v).unwrap(),
            "/web=42"
        );
    }

    #[test]
    fn parse_errors_are_gos() {
        let v = json!({});
        assert_eq!(
            run("{{.Bad", &v).unwrap_err(),
            "template: :1: unclosed action"
        );
        assert_eq!(
            run("x\n{{.A}}{{", &v).unwrap_err(),
            "template: :2: unclosed action"
        );
        assert_eq!(
            run("{{nosuch .A}}", &v).unwrap_err(),
            "template: :1: function \"nosuch\" not defined"
        );
        assert_eq!(
            run("{{}}", &v).unwrap_err(),
            "template: :1: missing value for command"
        );
        assert_eq!(
            run("{{range .A}}", &v).unwrap_err(),
            "template: :1: unexpected EOF"
        );
        assert_eq!(
            run("{{end}}", &v).unwrap_err(),
            "template: :1: unexpected {{end}}"
        );
    }

    #[test]
    fn missing_fields_are_errors() {
        let v = json!({"State": {"Pid": 1}, "Gone": null});
        assert_eq!(
            run("{{.NoSuchField}}", &v).unwrap_err(),
            "template: :1:2: executing \"\" at <.NoSuchField>: map has no entry for key \"NoSuchField\""
        );
        assert_eq!(
            run("pid {{.State.Nope}}", &v).unwrap_err(),
            "template: :1:6: executing \"\" at <.State.Nope>: map has no entry for key \"Nope\""
        );
        assert_eq!(run("{{.Gone}}", &v).unwrap(), "<no value>");
    }

    #[test]
    fn keyed_calls_index_a_map_field() {
        let v = json!({"Names": "web", "Label": {"com.example.app-name": "shop", "k": "v"}});
        assert_eq!(
            run(
                "{{.Names}} {{.Label \"com.example.app-name\"}}|{{.Label \"nope\"}}|",
                &v
            )
            .unwrap(),
            "web shop||"
        );
        assert_eq!(run("{{\"k\" | .Label | upper}}", &v).unwrap(), "V");
        assert_eq!(run("{{upper (.Label \"k\")}}", &v).unwrap(), "V");
        assert_eq!(
            run("{{.Label \"k\" \"z\"}}", &v).unwrap_err(),
            "template: :1:2: executing \"\" at <.Label>: wrong number of args for Label: want 1 got 2"
        );
        assert_eq!(
            run("{{.Names \"k\"}}", &v).unwrap_err(),
            "template: :1:2: executing \"\" at <.Names>: can't give argument to non-function .Names"
        );
        assert_eq!(
            run("{{.Label 1}}", &v).unwrap_err(),
            "template: :1:2: executing \"\" at <.Label>: wrong type for value; expected string; got int"
        );
    }

    #[test]
    fn headers_show_titles_as_docker() {
        let titles = json!({"Names": "NAMES", "Repository": "REPOSITORY"});
        let header = |t: &str| Template::parse(t).unwrap().execute_header(&titles);
        assert_eq!(
            header("{{.Names}}\\t{{.Label \"com.example.app-name\"}}\\t{{.Label \"a_b\"}}"),
            "NAMES\tapp name\ta b"
        );
        assert_eq!(
            header("{{.Repository | upper}} {{lower .Names}}"),
            "REPOSITORY NAMES"
        );
        assert_eq!(header("{{.Other}}"), "<no value>");
        // Docker keeps what rendered before an error.
        assert_eq!(header("{{.Names}} {{index .Names 1}}"), "NAMES ");
    }

    #[test]
    fn a_lone_brace_is_gos_operand_error() {
        assert_eq!(
            run("{{.Name}", &json!({})).unwrap_err(),
            "template: :1: unexpected \"}\" in operand"
        );
    }
}
