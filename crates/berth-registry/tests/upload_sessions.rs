//! Upload sessions answer only to the repository and the user that opened them (issue 13
//! §4): another user who learns a session's id cannot read its progress, append to it,
//! commit it into their own repository or cancel it; nor can its owner move it to another
//! repository. Real HTTP on loopback.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use berth_oci::Digest;
use berth_registry::server::{self, AccessRule, AuthConfig, RunningServer, ServerConfig};

fn start(storage: &Path, auth: AuthConfig) -> RunningServer {
    server::spawn(&ServerConfig {
        addr: "127.0.0.1:0".into(),
        storage: storage.to_owned(),
        auth,
        ..Default::default()
    })
    .unwrap()
}

fn basic(user: &str) -> String {
    let raw = format!("{user}:pw-{user}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn two_users(dir: &Path) -> AuthConfig {
    let mut ht = String::new();
    for u in ["alice", "bob"] {
        ht.push_str(&format!(
            "{u}:{}\n",
            bcrypt::hash(format!("pw-{u}"), 4).unwrap()
        ));
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, ht).unwrap();
    AuthConfig {
        htpasswd: Some(path),
        rules: ["alice", "bob"]
            .iter()
            .map(|u| AccessRule {
                repository: format!("{u}/*"),
                users: vec![(*u).into()],
                actions: vec!["*".into()],
            })
            .collect(),
        ..Default::default()
    }
}

/// Status and body of a request (`auth` as the Authorization header).
fn send(method: &str, url: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = ureq::request(method, url);
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    match req.send_bytes(body) {
        Ok(r) => {
            let status = r.status();
            (status, r.into_string().unwrap_or_default())
        }
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn assert_unknown(what: &str, (status, body): (u16, String)) {
    assert_eq!(status, 404, "{what}: {body}");
    assert!(body.contains("BLOB_UPLOAD_UNKNOWN"), "{what}: {body}");
}

/// Opens a session and returns its id (checked to be 128 random bits, as hex).
fn open(base: &str, repo: &str, auth: Option<&str>) -> String {
    let mut req = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let r = req.call().unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.header("location").unwrap().to_owned();
    let id = loc.rsplit('/').next().unwrap().to_owned();
    assert_eq!(loc, format!("/v2/{repo}/blobs/uploads/{id}"));
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

#[test]
fn another_user_cannot_touch_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), two_users(dir.path()));
    let base = format!("http://{}", srv.addr);
    let (alice, bob) = (basic("alice"), basic("bob"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::of(&data);

    let id = open(&base, "alice/app", Some(&alice));
    assert_ne!(id, open(&base, "alice/app", Some(&alice)), "ids repeat");
    let own = format!("{base}/v2/alice/app/blobs/uploads/{id}");
    let (s, _) = send("PATCH", &own, Some(&alice), &data[..100_000]);
    assert_eq!(s, 202);

    // Bob, through his own repository, with alice's id: nothing of it exists for him.
    let theirs = format!("{base}/v2/bob/loot/blobs/uploads/{id}");
    assert_unknown("bob's status", send("GET", &theirs, Some(&bob), b""));
    assert_unknown("bob's append", send("PATCH", &theirs, Some(&bob), b"evil"));
    assert_unknown(
        "bob's commit into bob/loot",
        send("PUT", &format!("{theirs}?digest={digest}"), Some(&bob), b""),
    );
    assert_unknown("bob's cancel", send("DELETE", &theirs, Some(&bob), b""));
    // Through alice's repository he has no push right at all.
    let (s, body) = send("GET", &own, Some(&bob), b"");
    assert_eq!(s, 403, "{body}");
    // Alice herself cannot move the session to another repository of hers.
    let moved = format!("{base}/v2/alice/other/blobs/uploads/{id}");
    assert_unknown(
        "alice's status elsewhere",
        send("GET", &moved, Some(&alice), b""),
    );
    assert_unknown(
        "alice's commit elsewhere",
        send(
            "PUT",
            &format!("{moved}?digest={digest}"),
            Some(&alice),
            b"",
        ),
    );

    // Alice's upload was not touched: its size is hers alone and it completes.
    let r = ureq::get(&own).set("Authorization", &alice).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.header("range"), Some("0-99999"));
    let (s, body) = send("PATCH", &own, Some(&alice), &data[100_000..]);
    assert_eq!(s, 202, "{body}");
    let (s, body) = send("PUT", &format!("{own}?digest={digest}"), Some(&alice), b"");
    assert_eq!(s, 201, "{body}");
    let mut got = Vec::new();
    ureq::get(&format!("{base}/v2/alice/app/blobs/{digest}"))
        .set("Authorization", &alice)
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, data);
    // Bob's repository never got the blob.
    let (s, _) = send(
        "HEAD",
        &format!("{base}/v2/bob/loot/blobs/{digest}"),
        Some(&bob),
        b"",
    );
    assert_eq!(s, 404);

    // A session of bob's own works for him (the refusals above were about the owner).
    let bid = open(&base, "bob/loot", Some(&bob));
    let (s, body) = send(
        "PUT",
        &format!(
            "{base}/v2/bob/loot/blobs/uploads/{bid}?digest={}",
            Digest::of(b"mine")
        ),
        Some(&bob),
        b"mine",
    );
    assert_eq!(s, 201, "{body}");
    // ... and alice cannot cancel it through her repository.
    let bid = open(&base, "bob/loot", Some(&bob));
    assert_unknown(
        "alice's cancel",
        send(
            "DELETE",
            &format!("{base}/v2/alice/app/blobs/uploads/{bid}"),
            Some(&alice),
            b"",
        ),
    );
    let (s, _) = send(
        "GET",
        &format!("{base}/v2/bob/loot/blobs/uploads/{bid}"),
        Some(&bob),
        b"",
    );
    assert_eq!(s, 204);
}

/// With auth off there are no users, but a session still belongs to its repository.
#[test]
fn a_session_belongs_to_its_repository_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(&dir.path().join("storage"), AuthConfig::default());
    let base = format!("http://{}", srv.addr);
    let id = open(&base, "a/one", None);
    let d = Digest::of(b"bytes");
    let other = format!("{base}/v2/b/two/blobs/uploads/{id}");
    assert_unknown("status", send("GET", &other, None, b""));
    assert_unknown("append", send("PATCH", &other, None, b"bytes"));
    assert_unknown(
        "commit",
        send("PUT", &format!("{other}?digest={d}"), None, b"bytes"),
    );
    assert_unknown("cancel", send("DELETE", &other, None, b""));
    let (s, body) = send(
        "PUT",
        &format!("{base}/v2/a/one/blobs/uploads/{id}?digest={d}"),
        None,
        b"bytes",
    );
    assert_eq!(s, 201, "{body}");
}
