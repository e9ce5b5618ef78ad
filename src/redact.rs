//! Secrets kept out of messages and logs: the one home of URL redaction.
//!
//! A database URL can carry a secret in its user-info (`user:password@`),
//! in query parameters (`?password=…`, `sslpassword=…`, also with a
//! percent-encoded name such as `pass%77ord`) and in a fragment. `redact_url`
//! prints a URL with each of those replaced by `***`; `scrub` removes the
//! secrets of a URL from any other text (a driver's error message may echo
//! part of its input).

use percent_encoding::percent_decode_str;

/// The parts of a URL, split the way `redact_url` and `secrets` read it.
struct Parts<'a> {
    /// `scheme://` (or empty).
    scheme: &'a str,
    /// `user` and the password after the first `:`, if any.
    userinfo: Option<(&'a str, Option<&'a str>)>,
    /// Host, port and path.
    location: &'a str,
    /// Query text after `?`, without the fragment.
    query: Option<&'a str>,
    /// Fragment after `#`.
    fragment: Option<&'a str>,
}

fn split(url: &str) -> Parts<'_> {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // User-info ends at the last `@` before the query; a password holding
    // an unencoded `?` or `#` still ends at an `@` with no `/` before it.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let at = rest[..query_start].rfind('@').or_else(|| {
        rest.rfind('@')
            .filter(|&i| !rest[..i].contains('/') && scheme.ends_with("://"))
    });
    let (userinfo, rest) = match at {
        Some(i) => {
            let info = &rest[..i];
            let parsed = match info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (info, None),
            };
            (Some(parsed), &rest[i + 1..])
        }
        None => (None, rest),
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let (location, query) = match before_fragment.split_once('?') {
        Some((l, q)) => (l, Some(q)),
        None => (before_fragment, None),
    };
    Parts {
        scheme,
        userinfo,
        location,
        query,
        fragment,
    }
}

/// Whether a query parameter named `name` (percent-encoded or not) holds a
/// secret.
fn is_secret_parameter(name: &str) -> bool {
    let name = percent_decode_str(&name.replace('+', " "))
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// A database URL safe to print: passwords, secret-bearing query
/// parameters and any fragment replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let parts = split(url);
    let mut out = String::from(parts.scheme);
    if let Some((user, password)) = parts.userinfo {
        out.push_str(user);
        if password.is_some() {
            out.push_str(":***");
        }
        out.push('@');
    }
    out.push_str(parts.location);
    if let Some(query) = parts.query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((name, _)) if is_secret_parameter(name) => format!("{name}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    if parts.fragment.is_some() {
        out.push_str("#***");
    }
    out
}

/// The secret values a URL carries, as written and percent-decoded.
fn secrets(url: &str) -> Vec<String> {
    let parts = split(url);
    let mut raw: Vec<&str> = Vec::new();
    if let Some((_, Some(password))) = parts.userinfo {
        raw.push(password);
    }
    if let Some(query) = parts.query {
        raw.extend(query.split('&').filter_map(|p| {
            p.split_once('=')
                .filter(|(name, _)| is_secret_parameter(name))
                .map(|(_, v)| v)
        }));
    }
    if let Some(f) = parts.fragment {
        raw.push(f);
    }
    let mut out = Vec::new();
    for s in raw {
        out.push(s.to_string());
        out.push(percent_decode_str(s).decode_utf8_lossy().into_owned());
        out.push(
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    // Longest first, so that a secret containing another is removed whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    // Very short values would blank out ordinary words; the URL itself is
    // still replaced whole.
    out.retain(|s| s.chars().count() >= 3);
    out
}

/// `text` with `url` (whole) and each secret it carries replaced: for
/// messages that may echo a URL or part of it.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = if url.is_empty() {
        text.to_string()
    } else {
        text.replace(url, &redact_url(url))
    };
    for secret in secrets(url) {
        out = out.replace(&secret, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_url_secret_is_redacted() {
        let cases = [
            (
                "mysql://admin:s3cret@db.example:3306/x",
                "mysql://admin:***@db.example:3306/x",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://streamfold.db", "sqlite://streamfold.db"),
            ("mysql://a:p@ss@h/x", "mysql://a:***@h/x"),
            ("mysql://a:pa/ss@h/x", "mysql://a:***@h/x"),
            ("mysql://a:pa?ss@h/x", "mysql://a:***@h/x"),
            ("mysql://a:p%40ss%2Fw@h/x", "mysql://a:***@h/x"),
            (
                "postgres://u@host/db?password=hunter22",
                "postgres://u@host/db?password=***",
            ),
            (
                "postgres://u@host/db?sslmode=require&PASSWORD=hunter22&application_name=x",
                "postgres://u@host/db?sslmode=require&PASSWORD=***&application_name=x",
            ),
            (
                "postgres://u@host/db?pass%77ord=hunter22",
                "postgres://u@host/db?pass%77ord=***",
            ),
            (
                "postgresql:///db?host=/run/pg&password=hunter22",
                "postgresql:///db?host=/run/pg&password=***",
            ),
            (
                "mysql://u@h/db?ssl-mode=required&sslpassword=x1y2z3",
                "mysql://u@h/db?ssl-mode=required&sslpassword=***",
            ),
            ("postgres://u@h/db#hunter22", "postgres://u@h/db#***"),
            (
                "postgres://u@h:5432/db?user=a@b",
                "postgres://u@h:5432/db?user=a@b",
            ),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn scrub_removes_secrets_echoed_in_any_form() {
        let url = "postgres://u:p%40ssw0rd@h/db?password=hunter%2022&x=1";
        let text =
            format!("cannot connect to {url}: bad p@ssw0rd or p%40ssw0rd; hunter 22 / hunter%2022");
        let s = scrub(&text, url);
        for secret in ["p@ssw0rd", "p%40ssw0rd", "hunter 22", "hunter%2022"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert!(s.contains("postgres://u:***@h/db?password=***&x=1"), "{s}");
        assert_eq!(scrub("plain", "sqlite://x.db"), "plain");
    }
}
