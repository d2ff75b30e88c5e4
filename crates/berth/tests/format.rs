//! `--format` of the listing verbs (`ps`, `images`, `history`, `system df`, `network ls`,
//! `image inspect`) as a Docker user sees it: one Go template engine for all of them, with
//! Docker's `table` and `json` directives, keyed `.Label "k"` columns, template functions,
//! and a template that does not parse refused with one line. Root only (busybox is imported
//! with its owners); each test has its own root.

#[path = "containers_support/mod.rs"]
mod support;

use support::{stderr, stdout, Env};

/// `ps --format 'table …{{.Label "key"}}…'`: the column is headed by the key's last dotted
/// part with `-` and `_` as spaces, a container without the label shows an empty cell, and
/// functions work on the row's fields.
#[test]
fn ps_table_heads_a_label_column_with_the_keys_last_part() {
    let Some(env) = Env::for_root_test("ps_table_heads_a_label_column_with_the_keys_last_part")
    else {
        return;
    };
    env.ok(&[
        "create",
        "--name",
        "fmt-labelled",
        "--label",
        "com.example.app-name=shop",
        "busybox",
        "true",
    ]);
    env.ok(&["create", "--name", "fmt-plain", "busybox", "true"]);
    let out = env.ok(&[
        "ps",
        "-a",
        "--format",
        "table {{.Names}}\\t{{.Label \"com.example.app-name\"}}\\t{{.Names | upper}}",
    ]);
    assert_eq!(
        out,
        "NAMES          app name   NAMES\n\
         fmt-plain                 FMT-PLAIN\n\
         fmt-labelled   shop       FMT-LABELLED",
    );
    // Without `table`: no header, the missing label is an empty string.
    let out = env.ok(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}={{.Label \"com.example.app-name\"}};",
    ]);
    assert_eq!(out, "fmt-plain=;\nfmt-labelled=shop;");
}

/// `images --format` runs Go template functions and pipelines (the old renderer printed
/// them as they were), `\t` and `\n` escapes, and a table's header shows the column titles
/// through the functions.
#[test]
fn images_format_runs_template_functions() {
    let Some(env) = Env::for_root_test("images_format_runs_template_functions") else {
        return;
    };
    env.ok(&["tag", "busybox", "fmt/app:v1"]);
    assert_eq!(
        env.ok(&[
            "images",
            "--format",
            "{{.Repository | upper}}:{{upper .Tag}}",
            "fmt/app"
        ]),
        "FMT/APP:V1"
    );
    assert_eq!(
        env.ok(&[
            "images",
            "--format",
            "{{join (split .Repository \"/\") \"-\"}}\\t{{.Tag}}\\n{{len .Tag}}",
            "fmt/app",
        ]),
        "fmt-app\tv1\n2"
    );
    assert_eq!(
        env.ok(&[
            "images",
            "--format",
            "{{if eq .Tag \"v1\"}}first{{else}}other{{end}} {{printf \"%s@%s\" .Repository .Tag}}",
            "fmt/app",
        ]),
        "first fmt/app@v1"
    );
    assert_eq!(
        env.ok(&[
            "images",
            "--format",
            "table {{.Repository | upper}}\\t{{title .Tag}}",
            "fmt/app",
        ]),
        "REPOSITORY   TAG\nFMT/APP      V1"
    );
    // An empty --format is the default table, as Docker.
    let table = env.ok(&["images", "--format", "", "fmt/app"]);
    assert!(table.starts_with("REPOSITORY   TAG "), "{table}");
    assert_eq!(
        env.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Name | upper}} {{.Driver}}",
            "bridge"
        ]),
        "BRIDGE bridge"
    );
}

/// A `--format` that does not parse is Docker's one line, `template parsing error: ...`,
/// status 1 and nothing on stdout, for every listing; a field the rows do not have is the
/// same kind of error; `image inspect -f` is 64, as `inspect`.
#[test]
fn a_template_that_does_not_parse_is_one_line_and_a_failure() {
    let Some(env) = Env::for_root_test("a_template_that_does_not_parse_is_one_line_and_a_failure")
    else {
        return;
    };
    env.ok(&["create", "--name", "fmt-err", "busybox", "true"]);
    let unclosed = "template parsing error: template: :1: unclosed action\n";
    for args in [
        &["images", "--format", "{{.Repository"][..],
        &["images", "--format", "table {{.Repository"],
        &["ps", "-a", "--format", "{{.Names"],
        &["history", "--format", "{{.Size", "busybox"],
        &["system", "df", "--format", "{{.Type"],
        &["network", "ls", "--format", "{{.Name"],
        &["stats", "--no-stream", "--format", "{{.Name", "fmt-err"],
    ] {
        let out = env.berth(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), unclosed, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    let out = env.berth(&["images", "--format", "{{.Repository}"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "template parsing error: template: :1: unexpected \"}\" in operand\n"
    );
    let out = env.berth(&["ps", "-a", "--format", "{{.Names}} {{.Nope}}"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "template parsing error: template: :1:13: executing \"\" at <.Nope>: map has no entry for key \"Nope\"\n"
    );
    assert_eq!(stdout(&out), "");
    for args in [
        &["image", "inspect", "-f", "{{.Id", "busybox"][..],
        &["network", "inspect", "-f", "{{.Name", "bridge"],
    ] {
        let out = env.berth(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert_eq!(stderr(&out), unclosed, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

/// `--format json` (and `{{json .}}`) print one JSON object per row with Docker's fields.
#[test]
fn json_format_prints_one_object_per_row() {
    let Some(env) = Env::for_root_test("json_format_prints_one_object_per_row") else {
        return;
    };
    env.ok(&[
        "create", "--name", "fmt-json", "--label", "a=b", "busybox", "true",
    ]);
    let images = env.ok(&["images", "--format", "json"]);
    let rows: Vec<serde_json::Value> = images
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(rows.len(), 1, "{images}");
    assert_eq!(rows[0]["Repository"], "busybox");
    assert_eq!(rows[0]["Tag"], "latest");
    for key in ["ID", "CreatedAt", "CreatedSince", "Size", "Digest"] {
        assert!(rows[0][key].is_string(), "{key}: {images}");
    }
    assert_eq!(env.ok(&["images", "--format", "{{json .}}"]), images);
    assert_eq!(
        env.ok(&["images", "--format", "{{json .Repository}}"]),
        "\"busybox\""
    );
    let ps = env.ok(&["ps", "-a", "--format", "json"]);
    let row: serde_json::Value = serde_json::from_str(&ps).expect("one JSON object");
    assert_eq!(row["Names"], "fmt-json");
    assert_eq!(row["Labels"], "a=b");
    assert_eq!(row["Image"], "busybox");
}
