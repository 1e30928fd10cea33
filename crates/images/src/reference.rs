//! Docker-style image reference normalization ("busybox" -> "docker.io/library/busybox:latest").

use crate::ImageError;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedRef {
    /// "docker.io", "127.0.0.1:5000", "quay.io".
    pub registry: String,
    /// "library/busybox".
    pub repository: String,
    /// The tag, if any ("latest" is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl ParsedRef {
    /// "docker.io/library/busybox".
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The full normalized form.
    pub fn normalized(&self) -> String {
        let mut s = self.repo_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The "repo:tag" reference recorded for this pull, if the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{}", self.repo_name(), t))
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by ".", "_", "__" or runs of "-".
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Validates `sha256:<64 lowercase hex>`.
pub(crate) fn valid_digest(d: &str) -> bool {
    match d.strip_prefix("sha256:") {
        Some(h) => {
            h.len() == 64
                && h.bytes()
                    .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
        }
        None => false,
    }
}

/// Parses and normalizes a reference the way Docker does.
pub(crate) fn parse(reference: &str) -> Result<ParsedRef, ImageError> {
    let r = reference.trim();
    if r.is_empty() {
        return Err(invalid(reference, "empty reference"));
    }
    let (name_tag, digest) = match r.split_once('@') {
        Some((n, d)) => {
            if !valid_digest(d) {
                return Err(invalid(
                    reference,
                    format!("digest {d:?} is not sha256:<64 lowercase hex>"),
                ));
            }
            (n, Some(d.to_string()))
        }
        None => (r, None),
    };
    // A tag is a ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let t = &name_tag[last_slash + i + 1..];
            if !valid_tag(t) {
                return Err(invalid(reference, format!("tag {t:?} is not valid")));
            }
            (&name_tag[..last_slash + i], Some(t.to_string()))
        }
        None => (name_tag, None),
    };
    if name.is_empty() {
        return Err(invalid(reference, "missing repository name"));
    }
    let (mut registry, mut repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        registry = "docker.io".to_string();
    }
    if !valid_domain(&registry) {
        return Err(invalid(
            reference,
            format!("registry {registry:?} is not a valid host[:port]"),
        ));
    }
    if registry == "docker.io" && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    if repository.len() > 255 {
        return Err(invalid(
            reference,
            "repository name longer than 255 characters",
        ));
    }
    if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
        return Err(invalid(
            reference,
            format!(
                "repository component {bad:?} must be lowercase letters, digits and single separators (. _ __ -)"
            ),
        ));
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Ok(ParsedRef {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Whether the registry is reached over plain HTTP: loopback and "localhost" always (as Docker), and
/// anything listed in `insecure` (as "HOST:PORT" or bare "HOST").
pub(crate) fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        && ip.is_loopback()
    {
        return true;
    }
    insecure.iter().any(|i| {
        let i = i
            .trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        i == registry || i == host
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(r: &str) -> String {
        parse(r).unwrap().normalized()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("bitnami/nginx:1"), "docker.io/bitnami/nginx:1");
        assert_eq!(n("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            n("index.docker.io/library/busybox:x"),
            "docker.io/library/busybox:x"
        );
        assert_eq!(n("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(n("localhost/a/b:c"), "localhost/a/b:c");
        assert_eq!(n("quay.io/coreos/etcd:v3.5"), "quay.io/coreos/etcd:v3.5");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            n(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            n(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        assert_eq!(
            n(&format!("localhost:5000/x@{d}")),
            format!("localhost:5000/x@{d}")
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:abc",
            "a//b",
            "-a",
            "busybox:-x",
            "a/b_/c",
            "host:99999/x",
        ] {
            assert!(
                matches!(parse(bad), Err(ImageError::InvalidReference { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn insecure_registries() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.1.2.3", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(!is_insecure("docker.io", &[]));
        assert!(is_insecure("reg.lan:5000", &["reg.lan:5000".into()]));
        assert!(!is_insecure("reg.lan:5001", &["reg.lan:5000".into()]));
    }
}
