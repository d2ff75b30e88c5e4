//! `--change` instructions (a Dockerfile subset) applied to an image config's `config` object.

use serde_json::{json, Map, Value};

use super::ImageError;

/// The instructions `import --change` accepts, as Docker.
const ALLOWED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Applies `changes` (e.g. `CMD ["sh"]`, `ENV A=1 B=2`, `EXPOSE 80/tcp`) to `config` (the
/// `config` object of an image config, Docker's capitalized keys).
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ImageError> {
    for change in changes {
        apply_one(config, change)?;
    }
    Ok(())
}

fn bad(change: &str, reason: impl Into<String>) -> ImageError {
    ImageError::BadChange {
        change: change.to_owned(),
        reason: reason.into(),
    }
}

fn apply_one(config: &mut Map<String, Value>, change: &str) -> Result<(), ImageError> {
    let trimmed = change.trim();
    let (instr, rest) = match trimmed.split_once(|c: char| c.is_whitespace()) {
        Some((i, r)) => (i, r.trim()),
        None => (trimmed, ""),
    };
    let upper = instr.to_ascii_uppercase();
    if !ALLOWED.contains(&upper.as_str()) {
        return Err(bad(
            change,
            format!("{upper} is not a valid change command"),
        ));
    }
    if rest.is_empty() {
        return Err(bad(
            change,
            format!("{upper} requires at least one argument"),
        ));
    }
    match upper.as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command(change, rest)?);
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command(change, rest)?);
        }
        "ENV" => {
            let pairs = key_values(change, rest, "ENV")?;
            let env = config
                .entry("Env")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !env.is_array() {
                *env = Value::Array(Vec::new());
            }
            let list = env.as_array_mut().map(std::mem::take).unwrap_or_default();
            let mut list: Vec<Value> = list;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                list.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(Value::String(format!("{k}={v}")));
            }
            *env = Value::Array(list);
        }
        "LABEL" => {
            let pairs = key_values(change, rest, "LABEL")?;
            let labels = config
                .entry("Labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if !labels.is_object() {
                *labels = Value::Object(Map::new());
            }
            if let Some(obj) = labels.as_object_mut() {
                for (k, v) in pairs {
                    obj.insert(k, Value::String(v));
                }
            }
        }
        "EXPOSE" => {
            let ports = config
                .entry("ExposedPorts")
                .or_insert_with(|| Value::Object(Map::new()));
            if !ports.is_object() {
                *ports = Value::Object(Map::new());
            }
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_num = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
                let nums_ok = match num.split_once('-') {
                    Some((a, b)) => valid_num(a) && valid_num(b),
                    None => valid_num(num),
                };
                if !nums_ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                    return Err(bad(change, format!("invalid port {p:?}")));
                }
                if let Some(obj) = ports.as_object_mut() {
                    obj.insert(format!("{num}/{proto}"), json!({}));
                }
            }
        }
        "VOLUME" => {
            let vols: Vec<String> = if rest.starts_with('[') {
                json_strings(change, rest)?
            } else {
                rest.split_whitespace().map(str::to_owned).collect()
            };
            let obj = config
                .entry("Volumes")
                .or_insert_with(|| Value::Object(Map::new()));
            if !obj.is_object() {
                *obj = Value::Object(Map::new());
            }
            if let Some(obj) = obj.as_object_mut() {
                for v in vols {
                    obj.insert(v, json!({}));
                }
            }
        }
        "USER" => {
            config.insert("User".into(), Value::String(rest.to_owned()));
        }
        "WORKDIR" => {
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned();
            let dir = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("{}/{}", current.trim_end_matches('/'), rest)
            };
            config.insert("WorkingDir".into(), Value::String(dir));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), Value::String(rest.to_owned()));
        }
        "ONBUILD" => {
            let list = config
                .entry("OnBuild")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(arr) = list.as_array_mut() {
                arr.push(Value::String(rest.to_owned()));
            }
        }
        _ => unreachable!("checked against ALLOWED"),
    }
    Ok(())
}

/// Exec form (`["a","b"]`) as is; shell form wrapped in `/bin/sh -c`.
fn command(change: &str, rest: &str) -> Result<Value, ImageError> {
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(json!(list));
        }
        // Docker falls back to the shell form when the JSON does not parse.
    }
    let _ = change;
    Ok(json!(["/bin/sh", "-c", rest]))
}

fn json_strings(change: &str, rest: &str) -> Result<Vec<String>, ImageError> {
    serde_json::from_str::<Vec<String>>(rest)
        .map_err(|e| bad(change, format!("not a JSON array of strings: {e}")))
}

/// `k=v k2="v 2"` pairs, or the legacy `k v...` form (one pair, value the rest).
fn key_values(change: &str, rest: &str, what: &str) -> Result<Vec<(String, String)>, ImageError> {
    let words = split_words(rest).map_err(|r| bad(change, r))?;
    if words.is_empty() {
        return Err(bad(
            change,
            format!("{what} requires at least one argument"),
        ));
    }
    if !words[0].contains('=') {
        // Legacy form: `ENV key value with spaces`.
        let (k, v) = rest
            .split_once(|c: char| c.is_whitespace())
            .ok_or_else(|| bad(change, format!("{what} names {rest:?} but gives no value")))?;
        return Ok(vec![(k.to_owned(), unquote(v.trim()))]);
    }
    let mut out = Vec::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| bad(change, format!("{what} expects key=value, got {w:?}")))?;
        if k.is_empty() {
            return Err(bad(change, format!("{what} has an empty key in {w:?}")));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on whitespace outside quotes, removing the quotes (backslash escapes the next
/// character).
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn unquote(s: &str) -> String {
    split_words(s)
        .ok()
        .filter(|w| w.len() == 1)
        .map(|mut w| w.remove(0))
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(changes: &[&str]) -> Result<Map<String, Value>, ImageError> {
        let mut m = Map::new();
        apply_changes(
            &mut m,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(m)
    }

    #[test]
    fn docker_changes() {
        let m = run(&[
            r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
            "CMD echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV C three four",
            "WORKDIR /app",
            "WORKDIR sub",
            "EXPOSE 80 53/udp",
            "USER app",
            "LABEL a=b",
        ])
        .unwrap();
        assert_eq!(m["Entrypoint"], json!(["/bin/sh", "-c"]));
        assert_eq!(m["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(m["Env"], json!(["A=1", "B=two words", "C=three four"]));
        assert_eq!(m["WorkingDir"], json!("/app/sub"));
        assert_eq!(m["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(m["User"], json!("app"));
        assert_eq!(m["Labels"], json!({"a": "b"}));
    }

    #[test]
    fn refuses_bad_changes() {
        assert!(run(&["RUN rm -rf /"]).is_err());
        assert!(run(&["EXPOSE 99999"]).is_err());
        assert!(run(&["CMD"]).is_err());
        assert!(run(&["ENV A=\"unterminated"]).is_err());
    }
}
