//! RollingUpdate arithmetic: `maxSurge` and `maxUnavailable` as numbers of pods
//! (Kubernetes' `GetScaledValueFromIntOrPercent` and `ResolveFenceposts`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Kubernetes' defaults for both fields.
const DEFAULT_PERCENT: &str = "25%";

/// An int, or a percentage of `total` rounded up (`round_up`) or down. A malformed value
/// (validation rejects it) counts as zero.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(percent) = skiff_api::names::parse_percent(s) else {
                return 0;
            };
            let product = percent.saturating_mul(i64::from(total));
            let scaled = if round_up {
                product.saturating_add(99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

/// The desired replica count (`spec.replicas`, default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the Deployment rolls (the default) rather than recreates.
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let default = || IntOrString::String(DEFAULT_PERCENT.into());
    (
        rolling
            .and_then(|r| r.max_surge.clone())
            .unwrap_or_else(default),
        rolling
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(default),
    )
}

/// `(surge, unavailable)` for `desired` replicas: surge rounds up, unavailable down, and
/// when both come to zero, one pod may be unavailable (or no rollout could progress).
pub fn fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, desired, true);
    let unavailable = scaled_value(max_unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// How many pods above `replicas` a rollout may run (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    fenceposts(&surge, &unavailable, replicas(d)).0
}

/// How many of `replicas` may be unavailable during a rollout (0 for Recreate), at most
/// `replicas`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) || desired == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    fenceposts(&surge, &unavailable, desired).1.min(desired)
}

/// `maxSurge` scaled against `replicas` (what `NewRSNewReplicas` uses, without the
/// fencepost adjustment).
pub fn raw_max_surge(d: &Deployment) -> i32 {
    scaled_value(&rolling_params(d).0, replicas(d), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn scaling_values() {
        let cases = [
            (int(3), 10, true, 3),
            (pct("25%"), 10, true, 3),
            (pct("25%"), 10, false, 2),
            (pct("25%"), 4, false, 1),
            (pct("0%"), 10, true, 0),
            (pct("100%"), 7, false, 7),
            (pct("33%"), 3, true, 1),
            (pct("33%"), 3, false, 0),
            (pct("abc"), 10, true, 0),
            (pct("5"), 10, true, 0),
        ];
        for (value, total, up, expected) in cases {
            assert_eq!(
                scaled_value(&value, total, up),
                expected,
                "{value:?} of {total}"
            );
        }
    }

    #[test]
    fn fencepost_resolution() {
        let cases = [
            // (surge, unavailable, replicas, expected)
            (pct("25%"), pct("25%"), 3, (1, 0)),
            (pct("25%"), pct("25%"), 4, (1, 1)),
            (int(0), int(0), 3, (0, 1)),
            (int(0), pct("10%"), 3, (0, 1)), // rounds down to 0: one is allowed anyway
            (int(1), int(0), 3, (1, 0)),
            (int(0), int(2), 3, (0, 2)),
        ];
        for (s, u, n, expected) in cases {
            assert_eq!(fenceposts(&s, &u, n), expected, "{s:?} {u:?} {n}");
        }
    }

    fn deployment(spec: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": spec})).unwrap()
    }

    #[test]
    fn per_deployment() {
        let t = json!({"metadata": {"labels": {"a": "b"}}});
        let rolling = deployment(json!({"replicas": 10, "selector": {}, "template": t,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": 20}}}));
        assert_eq!((max_surge(&rolling), max_unavailable(&rolling)), (3, 10));
        assert_eq!(raw_max_surge(&rolling), 3);
        let defaults = deployment(json!({"replicas": 4, "selector": {}, "template": t}));
        assert!(is_rolling_update(&defaults));
        assert_eq!((max_surge(&defaults), max_unavailable(&defaults)), (1, 1));
        let recreate = deployment(json!({"replicas": 4, "selector": {}, "template": t,
            "strategy": {"type": "Recreate"}}));
        assert!(!is_rolling_update(&recreate));
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        let zero = deployment(json!({"replicas": 0, "selector": {}, "template": t}));
        assert_eq!(max_unavailable(&zero), 0);
        assert_eq!(
            replicas(&deployment(json!({"selector": {}, "template": t}))),
            1
        );
    }
}
