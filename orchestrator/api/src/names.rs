//! Name syntax checks, worded exactly as Kubernetes words them.
//!
//! Each `is_*` function returns the list of problems (empty = valid); validation turns each
//! message into a `FieldError::invalid` on the field being checked. The messages are the
//! ones `k8s.io/apimachinery/pkg/util/validation` prints, down to its spacing, because
//! users and tools match on them.

/// Longest DNS-1123 label / DNS-1035 label / label value / qualified name part.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest ConfigMap / Secret key.
pub const CONFIG_KEY_MAX: usize = 253;
/// Longest IANA service (port) name.
pub const PORT_NAME_MAX: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const PERCENT_FMT: &str = "[0-9]+%";

/// Kubernetes' `RegexError`: the message, examples and the regex (the double space before
/// "or" is Kubernetes' own).
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// "must be no more than N characters"
pub fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn matches_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

fn matches_qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// RFC 1123 label: namespace names, container and volume names.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !matches_dns1123_label(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// RFC 1123 subdomain: most object names.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if s.is_empty() || !s.split('.').all(matches_dns1123_label) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// RFC 1035 label: Service names (they become DNS names and must start with a letter).
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(is_lower_alnum);
    if !ok {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// A name that must only be usable as one URL path segment (PersistentVolume names).
/// `prefix` is true for `generateName`.
pub fn is_path_segment_name(s: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix {
        for bad in [".", ".."] {
            if s == bad {
                errs.push(format!("may not be '{bad}'"));
            }
        }
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// The name checks by kind, as `metadata.name` uses them: `prefix` means the value is a
/// `generateName` (a trailing `-` is allowed there).
pub fn check_name(rule: NameRule, s: &str, prefix: bool) -> Vec<String> {
    let s = if prefix {
        // Kubernetes masks a trailing dash of a prefix so that `web-` passes.
        match s.strip_suffix('-') {
            Some(stripped) => format!("{stripped}a"),
            None => s.to_string(),
        }
    } else {
        s.to_string()
    };
    match rule {
        NameRule::Dns1123Subdomain => is_dns1123_subdomain(&s),
        NameRule::Dns1123Label => is_dns1123_label(&s),
        NameRule::Dns1035Label => is_dns1035_label(&s),
        NameRule::PathSegment => is_path_segment_name(&s, prefix),
    }
}

/// Which syntax a kind's `metadata.name` follows (as in Kubernetes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `example.com` — most kinds.
    Dns1123Subdomain,
    /// `my-name` — Namespaces.
    Dns1123Label,
    /// `my-name`, starting with a letter — Services.
    Dns1035Label,
    /// Anything usable as one path segment — PersistentVolumes.
    PathSegment,
}

/// A label key, annotation key or finalizer: `[prefix/]name`.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"],
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > DNS1123_LABEL_MAX {
        errs.push(format!("name part {}", max_len_error(DNS1123_LABEL_MAX)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errs
}

/// A label value: empty, or a qualified name part of at most 63 characters.
pub fn is_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !s.is_empty() && !matches_qualified_name_part(s) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// A ConfigMap / Secret key (it becomes a file name in a volume).
pub fn is_config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > CONFIG_KEY_MAX {
        errs.push(max_len_error(CONFIG_KEY_MAX));
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !ok {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// An IANA service name: container and service port names, named target ports.
pub fn is_port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > PORT_NAME_MAX {
        errs.push(max_len_error(PORT_NAME_MAX));
    }
    if s.is_empty() || !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// A port number: 1–65535.
pub fn is_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// An environment variable name (Kubernetes' relaxed rule, the default since 1.32: any
/// printable ASCII but `=`; WASI passes it through unchanged).
pub fn is_env_var_name(s: &str) -> Vec<String> {
    if s.is_empty() || s.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        vec![
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .to_string(),
        ]
    } else {
        Vec::new()
    }
}

/// The message for a malformed percentage (`maxSurge: "abc"`).
pub fn percent_error() -> String {
    regex_error(
        "a valid percent string must be a numeric string followed by an ending '%'",
        PERCENT_FMT,
        &["1%", "93%"],
    )
}

/// Parses `25%` into 25; `None` unless the string is digits followed by `%`.
pub fn parse_percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The alphabet Kubernetes uses for generated suffixes and hashes: no vowels (no words),
/// no look-alikes (0/o, 1/l, 3/e).
pub const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Kubernetes' longest `generateName` base: 63 minus the 5 random characters.
const GENERATED_BASE_MAX: usize = 58;

/// Completes a `generateName` prefix into a name, as the kube-apiserver does: the prefix
/// (cut to 58 bytes) followed by five characters of [`SAFE_ALPHABET`] drawn from
/// `entropy`. The caller supplies the randomness (this crate does no I/O).
pub fn generate_name(prefix: &str, entropy: u64) -> String {
    let mut base = prefix.to_string();
    if base.len() > GENERATED_BASE_MAX {
        let mut cut = GENERATED_BASE_MAX;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let mut e = entropy;
    for _ in 0..5 {
        let i = (e % SAFE_ALPHABET.len() as u64) as usize;
        base.push(char::from(SAFE_ALPHABET[i]));
        e /= SAFE_ALPHABET.len() as u64;
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label_cases() {
        let long = "a".repeat(64);
        let cases: Vec<(&str, usize)> = vec![
            ("a", 0),
            ("my-name", 0),
            ("123-abc", 0),
            ("", 1),
            ("-a", 1),
            ("a-", 1),
            ("A", 1),
            ("a.b", 1),
            ("a_b", 1),
            (&long, 1),
        ];
        for (input, n) in cases {
            assert_eq!(is_dns1123_label(input).len(), n, "{input:?}");
        }
        assert_eq!(
            is_dns1123_label("Foo")[0],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
    }

    #[test]
    fn dns1123_subdomain_cases() {
        let long = format!("{}.b", "a".repeat(252));
        let cases: Vec<(&str, bool)> = vec![
            ("example.com", true),
            ("a", true),
            ("a-b.c-d", true),
            ("Foo_Bar", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("", false),
            ("a.-b", false),
            (&long, false),
        ];
        for (input, ok) in cases {
            assert_eq!(is_dns1123_subdomain(input).is_empty(), ok, "{input:?}");
        }
        assert_eq!(
            is_dns1123_subdomain("Foo_Bar")[0],
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            is_dns1123_subdomain(&long)[0],
            "must be no more than 253 characters"
        );
    }

    #[test]
    fn dns1035_cases() {
        for (input, ok) in [
            ("web", true),
            ("a1", true),
            ("1a", false),
            ("a-", false),
            ("", false),
        ] {
            assert_eq!(is_dns1035_label(input).is_empty(), ok, "{input:?}");
        }
    }

    #[test]
    fn qualified_name_cases() {
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}/a", "a".repeat(254));
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("app", vec![]),
            ("app.kubernetes.io/name", vec![]),
            ("MyName", vec![]),
            ("my_name.x", vec![]),
            ("/a", vec!["prefix part must be non-empty"]),
            (
                "a/",
                vec!["name part must be non-empty", "name part must consist"],
            ),
            (
                "Example.com/a",
                vec!["prefix part a lowercase RFC 1123 subdomain"],
            ),
            ("a/b/c", vec!["a qualified name must consist"]),
            ("-a", vec!["name part must consist"]),
            ("a b", vec!["name part must consist"]),
            (
                &long_name,
                vec!["name part must be no more than 63 characters"],
            ),
            (
                &long_prefix,
                vec!["prefix part must be no more than 253 characters"],
            ),
        ];
        for (input, expected) in cases {
            let got = is_qualified_name(input);
            assert_eq!(got.len(), expected.len(), "{input:?}: {got:?}");
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    g.starts_with(e),
                    "{input:?}: {g:?} does not start with {e:?}"
                );
            }
        }
    }

    #[test]
    fn label_value_cases() {
        let long = "a".repeat(64);
        for (input, n) in [
            ("", 0),
            ("v1", 0),
            ("my_value", 0),
            ("a b", 1),
            ("-a", 1),
            (long.as_str(), 1),
        ] {
            assert_eq!(is_label_value(input).len(), n, "{input:?}");
        }
    }

    #[test]
    fn config_key_cases() {
        let long = "a".repeat(254);
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("key.name", vec![]),
            ("KEY_NAME", vec![]),
            (".hidden", vec![]),
            ("a b", vec!["a valid config key must consist"]),
            (".", vec!["must not be '.'"]),
            ("..", vec!["must not be '..'"]),
            ("..a", vec!["must not start with '..'"]),
            ("", vec!["a valid config key must consist"]),
            (&long, vec!["must be no more than 253 characters"]),
        ];
        for (input, expected) in cases {
            let got = is_config_key(input);
            assert_eq!(got.len(), expected.len(), "{input:?}: {got:?}");
            for (g, e) in got.iter().zip(&expected) {
                assert!(g.starts_with(e), "{input:?}: {g:?}");
            }
        }
    }

    #[test]
    fn port_name_cases() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("http", vec![]),
            ("http-2", vec![]),
            (
                "a-very-long-name-x",
                vec!["must be no more than 15 characters"],
            ),
            (
                "HTTP",
                vec![
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                    "must contain at least one letter (a-z)",
                ],
            ),
            ("80", vec!["must contain at least one letter (a-z)"]),
            ("a--b", vec!["must not contain consecutive hyphens"]),
            ("-ab", vec!["must not begin or end with a hyphen"]),
        ];
        for (input, expected) in cases {
            assert_eq!(is_port_name(input), expected, "{input:?}");
        }
    }

    #[test]
    fn env_var_and_percent_and_ports() {
        for (input, ok) in [
            ("PATH", true),
            ("my.var-1", true),
            ("A=B", false),
            ("", false),
            ("tab\t", false),
        ] {
            assert_eq!(is_env_var_name(input).is_empty(), ok, "{input:?}");
        }
        for (input, want) in [
            ("25%", Some(25)),
            ("0%", Some(0)),
            ("%", None),
            ("x%", None),
            ("25", None),
        ] {
            assert_eq!(parse_percent(input), want, "{input:?}");
        }
        for (port, ok) in [
            (0, false),
            (1, true),
            (65535, true),
            (65536, false),
            (-1, false),
        ] {
            assert_eq!(is_port_num(port).is_empty(), ok, "{port}");
        }
    }

    #[test]
    fn names_by_rule_and_prefix() {
        let cases = [
            (NameRule::Dns1123Subdomain, "web-", true, true),
            (NameRule::Dns1123Subdomain, "web-", false, false),
            (NameRule::Dns1123Label, "a.b", false, false),
            (NameRule::Dns1035Label, "1abc", false, false),
            (NameRule::PathSegment, "Foo_Bar", false, true),
            (NameRule::PathSegment, "..", false, false),
            (NameRule::PathSegment, "a/b", false, false),
        ];
        for (rule, input, prefix, ok) in cases {
            assert_eq!(
                check_name(rule, input, prefix).is_empty(),
                ok,
                "{rule:?} {input:?}"
            );
        }
    }

    #[test]
    fn generated_names() {
        let name = generate_name("web-", 12345);
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..].bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert_eq!(generate_name(&"x".repeat(70), 0).len(), 63);
        assert_ne!(generate_name("a-", 1), generate_name("a-", 2));
    }
}
