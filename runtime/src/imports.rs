//! What the host provides, read from the vendored WIT in `wit/deps`, and the check that
//! names every import of a component the host lacks.
//!
//! wasmtime's linker stops at the first import it cannot satisfy; a user fixing a
//! component wants all of them at once. The host links the whole of WASI 0.2 and
//! `wasi:config/store` (as `wit/README.md` describes) minus the interfaces a workload
//! exports (`wasi:cli/run`, `wasi:http/incoming-handler`) and minus `@unstable` ones.
//! Names match the way the linker matches them: same package and interface,
//! semver-compatible version (a pre-release, like `wasi:config`'s, matches exactly).

use std::collections::BTreeSet;

/// The vendored WASI packages, embedded so that `wit/` stays the one source of truth.
const WIT_DEPS: &[&str] = &[
    include_str!("../../wit/deps/cli/cli.wit"),
    include_str!("../../wit/deps/clocks/clocks.wit"),
    include_str!("../../wit/deps/config/config.wit"),
    include_str!("../../wit/deps/filesystem/filesystem.wit"),
    include_str!("../../wit/deps/http/http.wit"),
    include_str!("../../wit/deps/io/io.wit"),
    include_str!("../../wit/deps/random/random.wit"),
    include_str!("../../wit/deps/sockets/sockets.wit"),
];

/// Interfaces a workload exports; the host never provides them.
const EXPORT_ONLY: &[&str] = &["wasi:cli/run", "wasi:http/incoming-handler"];

/// The interfaces the host provides, as `(namespace:package/interface, version key)`.
#[derive(Clone, Debug)]
pub struct ProvidedImports {
    interfaces: BTreeSet<(String, String)>,
}

impl Default for ProvidedImports {
    fn default() -> Self {
        let mut interfaces = BTreeSet::new();
        for wit in WIT_DEPS {
            for (name, version) in interfaces_of(wit) {
                if !EXPORT_ONLY.contains(&name.as_str()) {
                    interfaces.insert((name, version_key(&version)));
                }
            }
        }
        ProvidedImports { interfaces }
    }
}

impl ProvidedImports {
    /// Whether an import name (`wasi:cli/environment@0.2.3`) is provided.
    pub fn provides(&self, import: &str) -> bool {
        let (name, version) = import.split_once('@').unwrap_or((import, ""));
        self.interfaces
            .contains(&(name.to_string(), version_key(version)))
    }

    /// The imports in `imports` that the host does not provide, in order.
    pub fn missing<'a>(&self, imports: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        imports
            .into_iter()
            .filter(|i| !self.provides(i))
            .map(str::to_string)
            .collect()
    }

    /// Every provided interface name (for messages and tests).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().map(|(n, _)| n.as_str())
    }
}

/// `(namespace:package/interface, version)` for each stable top-level interface.
fn interfaces_of(wit: &str) -> Vec<(String, String)> {
    let mut package = None;
    let mut unstable = false;
    let mut out = Vec::new();
    for line in wit.lines() {
        if let Some(rest) = line.strip_prefix("package ") {
            package = Some(rest.trim().trim_end_matches(';').to_string());
        } else if line.starts_with("@unstable") {
            unstable = true;
        } else if let Some(rest) = line.strip_prefix("interface ") {
            let name = rest
                .split(|c: char| c.is_whitespace() || c == '{')
                .next()
                .unwrap_or_default();
            if let (Some(package), false) = (&package, unstable) {
                let (pkg, version) = package.split_once('@').unwrap_or((package, ""));
                out.push((format!("{pkg}/{name}"), version.to_string()));
            }
            unstable = false;
        } else if line.starts_with("world ") {
            unstable = false;
        }
    }
    out
}

/// The part of a semver version that must match: `1.2.3` → `1`, `0.2.3` → `0.2`,
/// `0.0.3` → `0.0.3`; pre-releases and unversioned names match exactly.
fn version_key(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    match parts.as_slice() {
        [major, minor, patch] if !patch.contains(['-', '+']) => {
            if *major != "0" {
                (*major).to_string()
            } else if *minor != "0" {
                format!("0.{minor}")
            } else {
                version.to_string()
            }
        }
        _ => version.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provides_wasi_0_2_and_config_but_not_exports_or_unstable() {
        let p = ProvidedImports::default();
        assert!(p.provides("wasi:cli/environment@0.2.0"));
        assert!(p.provides("wasi:io/streams@0.2.12"));
        assert!(p.provides("wasi:http/outgoing-handler@0.2.3"));
        assert!(p.provides("wasi:sockets/tcp@0.2.0"));
        assert!(!p.provides("wasi:http/incoming-handler@0.2.0"));
        assert!(!p.provides("wasi:cli/run@0.2.0"));
        assert!(!p.provides("wasi:clocks/timezone@0.2.12"));
        assert!(!p.provides("wasi:io/streams@0.3.0"));
        // wasi:config is a pre-release: only the version wasmtime implements matches.
        assert!(p.provides("wasi:config/store@0.2.0-rc.1"));
        assert!(!p.provides("wasi:config/store@0.2.0-draft"));
        assert!(!p.provides("wasi:config/store@0.2.0"));
        assert_eq!(
            p.missing(["wasi:io/poll@0.2.0", "a:b/c", "wasi:keyvalue/store@0.2.0"]),
            vec!["a:b/c", "wasi:keyvalue/store@0.2.0"]
        );
    }

    #[test]
    fn version_keys() {
        assert_eq!(version_key("0.2.12"), "0.2");
        assert_eq!(version_key("1.4.0"), "1");
        assert_eq!(version_key("0.0.3"), "0.0.3");
        assert_eq!(version_key("0.2.0-rc-2023-11-10"), "0.2.0-rc-2023-11-10");
        assert_eq!(version_key(""), "");
    }
}
