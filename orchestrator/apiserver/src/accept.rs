//! Content negotiation on `Accept`, Kubernetes style: a media type may name a special
//! form with parameters (`application/json;as=Table;g=meta.k8s.io;v=v1`).

/// Walks `accept` in the client's order and returns the first acceptable answer:
/// `Some(version)` for `application/json;as={as_kind};g={group};v={version}` with a
/// version in `versions`, `None` for plain JSON (also when nothing matches, or no
/// `Accept` was sent).
pub fn negotiate(
    accept: Option<&str>,
    as_kind: &str,
    group: &str,
    versions: &[&'static str],
) -> Option<&'static str> {
    for part in accept?.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        if media != "application/json" && media != "*/*" {
            continue;
        }
        let (mut a, mut g, mut v) = (None, None, None);
        for p in params {
            match p.split_once('=') {
                Some(("as", x)) => a = Some(x),
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                _ => {}
            }
        }
        match a {
            None => return None,
            Some(a) if a == as_kind && g == Some(group) => {
                if let Some(found) = versions.iter().find(|x| Some(**x) == v) {
                    return Some(found);
                }
            }
            Some(_) => {}
        }
    }
    None
}
