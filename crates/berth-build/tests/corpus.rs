//! The golden corpus: every `tests/corpus/*.Dockerfile` parses to the AST (or the error, with
//! file, line and column) recorded next to it in `*.expected`. Run with `BLESS=1` to
//! rewrite the expected files after an intended change, then review the diff.

use std::fs;
use std::path::Path;

fn render(name: &str, text: &str) -> String {
    match berth_build::dockerfile::parse(text, name) {
        Ok(df) => serde_json::to_string_pretty(&df).expect("serializable") + "\n",
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn corpus_matches_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let bless = std::env::var_os("BLESS").is_some();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "the corpus has {} files", names.len());
    let mut failures = Vec::new();
    for path in names {
        let text = fs::read_to_string(&path).expect("read");
        let got = render("Dockerfile", &text);
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let want = fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}\n--- got\n{got}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
