//! The tags of a repository (`GET /v2/NAME/tags/list`), page by page as the registry's
//! `Link` headers lead: what `pull --all-tags` pulls.

use super::{ClientError, RequestBody, Session};
use crate::name::RepoName;

/// Most tags taken from one registry, whatever its pages say (a bound for a hostile one).
const MAX_TAGS: usize = 100_000;

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Every tag of `repo`, in the registry's order.
pub fn list_tags(session: &Session, repo: &RepoName) -> Result<Vec<String>, ClientError> {
    let scope = format!("repository:{repo}:pull");
    let mut next = Some(format!("/v2/{repo}/tags/list"));
    let mut out = Vec::new();
    while let Some(path) = next.take() {
        let reply = session.request("GET", &path, &scope, &[], &mut || RequestBody::Empty)?;
        next = reply.header("link").and_then(next_link);
        let url = reply.url.clone();
        let body = reply.into_bytes(16 << 20)?;
        let list: TagList = serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url,
            reason: format!("tag list: {e}"),
        })?;
        out.extend(list.tags.unwrap_or_default());
        if out.len() > MAX_TAGS {
            break;
        }
    }
    Ok(out)
}

/// The target of `Link: <...>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_link_reads_the_rel_next_target() {
        assert_eq!(
            super::next_link("</v2/a/tags/list?n=2&last=b>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(super::next_link("</x>; rel=\"prev\""), None);
    }
}
