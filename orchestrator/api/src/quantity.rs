//! Kubernetes quantities (`100m`, `1`, `128Mi`, `1G`, `1e3`), exact to the nano-unit.
//!
//! A [`Quantity`] keeps its value as an `i128` count of 10⁻⁹ units, which holds every
//! quantity a cluster meets exactly (up to about 10²⁰ units) — enough to sum the CPU and
//! memory requests of any number of pods without rounding. As in Kubernetes, a value with
//! more precision than a nano-unit is rounded up (away from zero).
//!
//! The scheduler wants [`Quantity::milli_value`] for CPU (millicores) and
//! [`Quantity::value`] for memory (bytes); [`pod_requests`] sums a pod's requests the way
//! the Kubernetes scheduler does.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use crate::error::{Error, Result};

const NANO: i128 = 1_000_000_000;

/// The regular expression Kubernetes cites when a quantity does not parse.
pub const QUANTITY_REGEX_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// How a quantity was written, which decides how it is printed back (as Kubernetes does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of 1000 with SI suffixes: `m`, `k`, `M`, `G`, … (and no suffix).
    DecimalSi,
    /// Powers of 1024: `Ki`, `Mi`, `Gi`, …
    BinarySi,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// A parsed, exact quantity. Ordering and equality compare the value only (`1000m == 1`).
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::ZERO
    }
}

fn err(input: &str, reason: &str) -> Error {
    Error::Quantity {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

/// base^exp for the suffix, as (base, exponent).
fn suffix(s: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSi));
    let bin = |e| Some((2, e, Format::BinarySi));
    match s {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = s.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let e: i32 = rest.parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
    }
}

/// Multiplies the numerator (`times` > 0) or the denominator (`times` < 0) by
/// `factor^|times|`; `None` on overflow.
fn scale(factor: i128, times: i32, numerator: &mut i128, denominator: &mut i128) -> Option<()> {
    for _ in 0..times.unsigned_abs() {
        if times > 0 {
            *numerator = numerator.checked_mul(factor)?;
        } else {
            *denominator = denominator.checked_mul(factor)?;
        }
    }
    Some(())
}

/// `n / d`, rounded away from zero.
fn div_round_up(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if (n < 0) == (d < 0) {
        q + 1
    } else {
        q - 1
    }
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    /// Parses Kubernetes' quantity syntax.
    pub fn parse(input: &str) -> Result<Quantity> {
        if input.is_empty() {
            return Err(err(input, "quantity is empty"));
        }
        let bytes = input.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut mantissa: i128 = 0;
        let mut frac_digits: i32 = 0;
        let mut digits = 0usize;
        let mut seen_dot = false;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > 30 {
                        return Err(err(input, "too many digits"));
                    }
                    mantissa = mantissa * 10 + i128::from(b - b'0');
                    if seen_dot {
                        frac_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            i += 1;
        }
        if digits == 0 {
            return Err(err(input, QUANTITY_REGEX_MESSAGE));
        }
        let rest = input.get(i..).unwrap_or("");
        let (base, exp, format) =
            suffix(rest).ok_or_else(|| err(input, "unable to parse quantity's suffix"))?;
        let too_large = || err(input, "quantity is too large");
        // value = mantissa * 10^-frac * base^exp, in nanos (* 10^9).
        let mut numerator = mantissa;
        let mut denominator: i128 = 1;
        let decimal_exp = if base == 10 {
            exp + 9 - frac_digits
        } else {
            9 - frac_digits
        };
        scale(10, decimal_exp, &mut numerator, &mut denominator).ok_or_else(too_large)?;
        if base == 2 {
            scale(2, exp, &mut numerator, &mut denominator).ok_or_else(too_large)?;
        }
        let mut nanos = div_round_up(numerator, denominator);
        if negative {
            nanos = -nanos;
        }
        Ok(Quantity { nanos, format })
    }

    /// Parses a `k8s-openapi` quantity.
    pub fn from_k8s(q: &K8sQuantity) -> Result<Quantity> {
        Quantity::parse(&q.0)
    }

    /// The quantity as a `k8s-openapi` value, in canonical form.
    pub fn to_k8s(&self) -> K8sQuantity {
        K8sQuantity(self.to_string())
    }

    /// `n` whole units (bytes, cores), printed as a decimal.
    pub fn from_value(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// `n` thousandths (millicores).
    pub fn from_millis(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * 1_000_000,
            format: Format::DecimalSi,
        }
    }

    /// `n` bytes, printed with binary suffixes (`128Mi`).
    pub fn from_bytes(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * NANO,
            format: Format::BinarySi,
        }
    }

    /// The exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// How the quantity was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in whole units, rounded up (bytes for memory), saturating at `i64`.
    pub fn value(&self) -> i64 {
        saturate(div_round_up(self.nanos, NANO))
    }

    /// The value in thousandths, rounded up (millicores for CPU), saturating at `i64`.
    pub fn milli_value(&self) -> i64 {
        saturate(div_round_up(self.nanos, 1_000_000))
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The sum, or `None` on overflow. The format is `self`'s.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
        })
    }

    /// The sum, saturating on overflow.
    pub fn saturating_add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }

    /// The difference, saturating on overflow.
    pub fn saturating_sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl FromStr for Quantity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Quantity> {
        Quantity::parse(s)
    }
}

impl TryFrom<&K8sQuantity> for Quantity {
    type Error = Error;
    fn try_from(q: &K8sQuantity) -> Result<Quantity> {
        Quantity::parse(&q.0)
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        self.saturating_add(&rhs)
    }
}

impl std::ops::AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = self.saturating_add(&rhs);
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::ZERO, |a, b| a + b)
    }
}

/// Canonical form, as Kubernetes prints quantities: no fractional digits, the largest
/// suffix that keeps the mantissa whole, the original format (binary values below 1024
/// or not whole fall back to decimal).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        if self.format == Format::BinarySi
            && abs.is_multiple_of(NANO as u128)
            && abs / (NANO as u128) >= 1024
        {
            let mut units = abs / NANO as u128;
            let mut i = 0;
            while i < 6 && units.is_multiple_of(1024) {
                units /= 1024;
                i += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i];
            return write!(f, "{sign}{units}{suffix}");
        }
        // Decimal: the exponent (a multiple of 3, from -9 up to 18) as large as possible.
        let mut mantissa = abs;
        let mut exp: i32 = -9;
        while exp < 18 && mantissa.is_multiple_of(1000) {
            mantissa /= 1000;
            exp += 3;
        }
        if self.format == Format::DecimalExponent {
            return if exp == 0 {
                write!(f, "{sign}{mantissa}")
            } else {
                write!(f, "{sign}{mantissa}e{exp}")
            };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        };
        write!(f, "{sign}{mantissa}{suffix}")
    }
}

/// A pod's effective requests, as the Kubernetes scheduler computes them: the sum over its
/// containers (and restartable init containers, sidecars), or the largest request of a
/// plain init container when that is higher, plus the pod overhead. Containers that set
/// only limits count their limits (Kubernetes defaults requests to limits).
///
/// Fails on the first quantity that does not parse (validation rejects those first).
pub fn pod_requests(spec: &PodSpec) -> Result<BTreeMap<String, Quantity>> {
    fn container_requests(
        c: &k8s_openapi::api::core::v1::Container,
    ) -> Result<BTreeMap<String, Quantity>> {
        let mut out = BTreeMap::new();
        if let Some(res) = &c.resources {
            if let Some(limits) = &res.limits {
                for (k, v) in limits {
                    out.insert(k.clone(), Quantity::from_k8s(v)?);
                }
            }
            if let Some(requests) = &res.requests {
                for (k, v) in requests {
                    out.insert(k.clone(), Quantity::from_k8s(v)?);
                }
            }
        }
        Ok(out)
    }
    let mut sum: BTreeMap<String, Quantity> = BTreeMap::new();
    let add = |sum: &mut BTreeMap<String, Quantity>, r: BTreeMap<String, Quantity>| {
        for (k, v) in r {
            *sum.entry(k).or_default() += v;
        }
    };
    for c in &spec.containers {
        add(&mut sum, container_requests(c)?);
    }
    let mut init_max: BTreeMap<String, Quantity> = BTreeMap::new();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut sum, r);
        } else {
            for (k, v) in r {
                let e = init_max.entry(k).or_default();
                if v > *e {
                    *e = v;
                }
            }
        }
    }
    for (k, v) in init_max {
        let e = sum.entry(k).or_default();
        if v > *e {
            *e = v;
        }
    }
    for (k, v) in spec.overhead.iter().flatten() {
        *sum.entry(k.clone()).or_default() += Quantity::from_k8s(v)?;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        // (input, milli_value, value, canonical)
        let cases: &[(&str, i64, i64, &str)] = &[
            ("100m", 100, 1, "100m"),
            ("1", 1000, 1, "1"),
            ("0", 0, 0, "0"),
            ("1000m", 1000, 1, "1"),
            ("1500m", 1500, 2, "1500m"),
            ("0.5", 500, 1, "500m"),
            (".5", 500, 1, "500m"),
            ("5.", 5000, 5, "5"),
            ("+2", 2000, 2, "2"),
            ("-1", -1000, -1, "-1"),
            ("128Mi", 134_217_728_000, 134_217_728, "128Mi"),
            ("1Gi", 1_073_741_824_000, 1_073_741_824, "1Gi"),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736, "1536Mi"),
            ("1536", 1_536_000, 1536, "1536"),
            ("1Ki", 1_024_000, 1024, "1Ki"),
            ("1G", 1_000_000_000_000, 1_000_000_000, "1G"),
            ("1k", 1_000_000, 1000, "1k"),
            ("1e3", 1_000_000, 1000, "1e3"),
            ("1E3", 1_000_000, 1000, "1e3"),
            ("1.5e3", 1_500_000, 1500, "1500"),
            ("5e-3", 5, 1, "5e-3"),
            ("1E", i64::MAX, 1_000_000_000_000_000_000, "1E"),
            ("1n", 1, 1, "1n"),
            ("1u", 1, 1, "1u"),
            ("0.1n", 1, 1, "1n"),
            ("2000000n", 2, 1, "2m"),
        ];
        for &(input, milli, value, canonical) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), milli, "{input} milli");
            assert_eq!(q.value(), value, "{input} value");
            assert_eq!(q.to_string(), canonical, "{input} canonical");
            // Canonical form parses back to the same value.
            assert_eq!(Quantity::parse(canonical).unwrap(), q, "{input} round trip");
        }
    }

    #[test]
    fn parse_errors() {
        for input in [
            "",
            "m",
            "abc",
            "1x",
            "1 m",
            "1Mii",
            "1.2.3",
            "--1",
            "1e",
            "1e1000",
            "1e-",
            "Mi",
            "99999999999999999999999999999999",
        ] {
            assert!(
                Quantity::parse(input).is_err(),
                "{input:?} should not parse"
            );
        }
    }

    #[test]
    fn ordering_and_sums() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("1000m"), q("1"));
        assert!(q("999m") < q("1"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("100m") + q("900m"), q("1"));
        let total: Quantity = ["64Mi", "64Mi"].iter().map(|s| q(s)).sum();
        assert_eq!(total.value(), 128 * 1024 * 1024);
        assert_eq!(Quantity::from_millis(250).to_string(), "250m");
        assert_eq!(Quantity::from_bytes(1 << 20).to_string(), "1Mi");
        assert_eq!(Quantity::from_value(3).to_k8s().0, "3");
    }

    #[test]
    fn pod_effective_requests() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "200m"}}},
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"memory": "16Mi"}}},
            ],
            "overhead": {"memory": "1Mi"}
        }))
        .unwrap();
        let r = pod_requests(&spec).unwrap();
        assert_eq!(r["cpu"].milli_value(), 1000);
        assert_eq!(r["memory"].value(), (64 + 16 + 1) * 1024 * 1024);
    }
}
