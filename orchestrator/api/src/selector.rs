//! Label and field selectors, with Kubernetes' syntax and meaning.
//!
//! - [`LabelSelector`]: parsed from the string syntax of `?labelSelector=` (`a=b`, `a==b`,
//!   `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-joined) or built
//!   from a Kubernetes `LabelSelector` (`matchLabels` + `matchExpressions`). One type, one
//!   [`LabelSelector::matches`], and `Display` back to the string syntax (requirements
//!   sorted by key, values sorted, as Kubernetes prints them).
//! - [`FieldSelector`]: `f=v`, `f==v`, `f!=v`, comma-joined, with `\,` `\=` `\\` escapes in
//!   values; [`supported_fields`] per resource and [`field_value`] to read a field off a
//!   JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::names;
use crate::registry::Resource;
use crate::validation::{FieldError, FieldPath, validate_labels};

/// A label requirement's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `a=b`
    Equals,
    /// `a==b`
    DoubleEquals,
    /// `a!=b` (also true when `a` is absent)
    NotEquals,
    /// `a in (x,y)`
    In,
    /// `a notin (x,y)` (also true when `a` is absent)
    NotIn,
    /// `a`
    Exists,
    /// `!a`
    DoesNotExist,
    /// `a>5` (integer comparison; node selectors)
    GreaterThan,
    /// `a<5`
    LessThan,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// A requirement, checked as Kubernetes checks it: the key is a qualified name, values
    /// are label values; `=`, `==`, `!=` take exactly one value, `in`/`notin` at least one,
    /// `exists`/`!` none, `>`/`<` one integer.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> std::result::Result<Requirement, String> {
        let key_errs = names::is_qualified_name(key);
        if let Some(e) = key_errs.first() {
            return Err(format!("invalid label key {key:?}: {e}"));
        }
        match operator {
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err("exact-match compatibility requires one single value".to_string());
            }
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".to_string());
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err("values set must be empty for exists and does not exist".to_string());
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(
                        "for 'Gt', 'Lt' operators, exactly one value is required".to_string()
                    );
                }
                if values.iter().any(|v| v.parse::<i64>().is_err()) {
                    return Err(
                        "for 'Gt', 'Lt' operators, the value must be an integer".to_string()
                    );
                }
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for v in &values {
                if let Some(e) = names::is_label_value(v).first() {
                    return Err(format!("invalid label value: {v:?}: {e}"));
                }
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a set of labels satisfies the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={one}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={one}", self.key),
            Operator::NotEquals => write!(f, "{}!={one}", self.key),
            Operator::GreaterThan => write!(f, "{}>{one}", self.key),
            Operator::LessThan => write!(f, "{}<{one}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// A label selector: all its requirements must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Parses the string syntax of `?labelSelector=`.
    pub fn parse(input: &str) -> Result<LabelSelector> {
        Parser::new(input)
            .parse()
            .map_err(|message| Error::LabelSelector {
                input: input.to_string(),
                message,
            })
    }

    /// `key=value` for each entry (a Service's `spec.selector`, a `matchLabels`).
    pub fn from_map(labels: &BTreeMap<String, String>) -> LabelSelector {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        LabelSelector { requirements }
    }

    /// Builds the selector of a Kubernetes `LabelSelector`. An invalid one is an error
    /// naming the field (`matchExpressions[0].values: Required value: …`); an empty one
    /// (`{}`) matches everything, as in Kubernetes.
    pub fn from_k8s(selector: &K8sLabelSelector) -> Result<LabelSelector> {
        let errs = validate_label_selector(selector, &FieldPath::default());
        if !errs.is_empty() {
            return Err(Error::LabelSelector {
                input: format!("{selector:?}"),
                message: crate::validation::aggregate_message(&errs),
            });
        }
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(
                Requirement::new(k, Operator::Equals, vec![v.clone()]).map_err(|message| {
                    Error::LabelSelector {
                        input: format!("{selector:?}"),
                        message,
                    }
                })?,
            );
        }
        for e in selector.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                _ => Operator::DoesNotExist,
            };
            requirements.push(
                Requirement::new(&e.key, op, e.values.clone().unwrap_or_default()).map_err(
                    |message| Error::LabelSelector {
                        input: format!("{selector:?}"),
                        message,
                    },
                )?,
            );
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`LabelSelector::matches`] on an optional label map (absent = no labels).
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match labels {
            Some(l) => self.matches(l),
            None => self.matches(&BTreeMap::new()),
        }
    }

    /// Whether the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = Error;
    fn from_str(s: &str) -> Result<LabelSelector> {
        LabelSelector::parse(s)
    }
}

impl TryFrom<&K8sLabelSelector> for LabelSelector {
    type Error = Error;
    fn try_from(s: &K8sLabelSelector) -> Result<LabelSelector> {
        LabelSelector::from_k8s(s)
    }
}

/// The checks Kubernetes applies to a `LabelSelector` field (a Deployment's
/// `spec.selector`): labels valid, operators known, values required for `In`/`NotIn` and
/// forbidden for `Exists`/`DoesNotExist`.
pub fn validate_label_selector(selector: &K8sLabelSelector, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = &selector.match_labels {
        errs.extend(validate_labels(labels, &path.child("matchLabels")));
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for m in names::is_qualified_name(&e.key) {
            errs.push(FieldError::invalid(&p.child("key"), &e.key, m));
        }
        for (j, v) in values.iter().enumerate() {
            for m in names::is_label_value(v) {
                errs.push(FieldError::invalid(&p.child("values").index(j), v, m));
            }
        }
    }
    errs
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,          // !
    NotEquals,    // !=
    Equals,       // =
    DoubleEquals, // ==
    Greater,      // >
    Less,         // <
    Open,         // (
    Close,        // )
    Comma,        // ,
    In,
    NotIn,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("identifier {s:?}"),
            Token::Not => "'!'".into(),
            Token::NotEquals => "'!='".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::Greater => "'>'".into(),
            Token::Less => "'<'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Comma => "','".into(),
            Token::In => "'in'".into(),
            Token::NotIn => "'notin'".into(),
            Token::End => "end of string".into(),
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
    /// Position of the last token read.
    at: usize,
    peeked: Option<(usize, Token, usize)>,
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Parser<'a> {
        Parser {
            input,
            pos: 0,
            at: 0,
            peeked: None,
        }
    }

    fn lex(&self) -> (usize, Token, usize) {
        let rest = &self.input[self.pos..];
        let trimmed = rest.trim_start();
        let start = self.pos + (rest.len() - trimmed.len());
        let mut chars = trimmed.chars();
        let Some(c) = chars.next() else {
            return (start, Token::End, start);
        };
        let next = chars.next();
        let two = |t| (start, t, start + 2);
        let one = |t| (start, t, start + 1);
        match (c, next) {
            ('!', Some('=')) => two(Token::NotEquals),
            ('!', _) => one(Token::Not),
            ('=', Some('=')) => two(Token::DoubleEquals),
            ('=', _) => one(Token::Equals),
            ('>', _) => one(Token::Greater),
            ('<', _) => one(Token::Less),
            ('(', _) => one(Token::Open),
            (')', _) => one(Token::Close),
            (',', _) => one(Token::Comma),
            _ => {
                let len = trimmed
                    .find(|c: char| c.is_whitespace() || is_special(c))
                    .unwrap_or(trimmed.len());
                let word = &trimmed[..len];
                let token = match word {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word.to_string()),
                };
                (start, token, start + len)
            }
        }
    }

    fn peek(&mut self) -> Token {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex());
        }
        self.peeked
            .as_ref()
            .map(|(_, t, _)| t.clone())
            .unwrap_or(Token::End)
    }

    fn next(&mut self) -> Token {
        let (start, token, end) = self.peeked.take().unwrap_or_else(|| self.lex());
        self.at = start;
        self.pos = end;
        token
    }

    fn error(&self, expected: &str, found: &Token) -> String {
        format!(
            "at position {}: expected {expected}, found {}",
            self.at,
            found.describe()
        )
    }

    fn parse(&mut self) -> std::result::Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        if self.peek() == Token::End {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                Token::End => break,
                Token::Comma => {}
                other => return Err(self.error("',' or end of string", &other)),
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    fn requirement(&mut self) -> std::result::Result<Requirement, String> {
        let negated = if self.peek() == Token::Not {
            self.next();
            true
        } else {
            false
        };
        let key = match self.next() {
            Token::Ident(k) => k,
            other => return Err(self.error("a label key", &other)),
        };
        let key_at = self.at;
        let build = |op, values: Vec<String>| {
            Requirement::new(&key, op, values).map_err(|e| format!("at position {key_at}: {e}"))
        };
        if negated {
            return match self.peek() {
                Token::End | Token::Comma => build(Operator::DoesNotExist, Vec::new()),
                other => {
                    self.next();
                    Err(self.error("',' or end of string after '!key'", &other))
                }
            };
        }
        let op = match self.peek() {
            Token::End | Token::Comma => return build(Operator::Exists, Vec::new()),
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            other => {
                self.next();
                return Err(self.error(
                    "an operator ('=', '==', '!=', 'in', 'notin', '>', '<')",
                    &other,
                ));
            }
        };
        self.next();
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => match self.peek() {
                // `a=` selects the empty value.
                Token::End | Token::Comma => vec![String::new()],
                Token::Ident(v) => {
                    self.next();
                    vec![v]
                }
                // `in`/`notin` are ordinary values here (`a=in`).
                Token::In => {
                    self.next();
                    vec!["in".to_string()]
                }
                Token::NotIn => {
                    self.next();
                    vec!["notin".to_string()]
                }
                other => {
                    self.next();
                    return Err(self.error("a value", &other));
                }
            },
        };
        build(op, values)
    }

    fn value_set(&mut self) -> std::result::Result<Vec<String>, String> {
        match self.next() {
            Token::Open => {}
            other => return Err(self.error("'('", &other)),
        }
        let mut values = Vec::new();
        if self.peek() == Token::Close {
            self.next();
            return Ok(values);
        }
        loop {
            // A value may be empty: `a in (,b)`.
            match self.peek() {
                Token::Ident(v) => {
                    self.next();
                    values.push(v);
                }
                Token::In | Token::NotIn => {
                    let t = self.next();
                    values.push(if t == Token::In { "in" } else { "notin" }.to_string());
                }
                Token::Comma | Token::Close => values.push(String::new()),
                other => {
                    self.next();
                    return Err(self.error("a value", &other));
                }
            }
            match self.next() {
                Token::Comma => {}
                Token::Close => return Ok(values),
                other => return Err(self.error("',' or ')'", &other)),
            }
        }
    }
}

/// A field selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `f=v`
    Equals,
    /// `f==v`
    DoubleEquals,
    /// `f!=v`
    NotEquals,
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// `metadata.name`
    pub field: String,
    /// The operator.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

/// A field selector: every term must hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Kubernetes' escaping of a field selector value: `\` → `\\`, `,` → `\,`, `=` → `\=`.
pub fn escape_field_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape_field_value(v: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => return Err(format!("invalid escape sequence: \\{other}")),
                None => return Err("invalid escape sequence: \\ at end of value".to_string()),
            },
            ',' | '=' => return Err(format!("invalid field selector value {v:?}: unescaped {c}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn split_terms(input: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in input.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&input[start..i]);
            start = i + 1;
        }
    }
    terms.push(&input[start..]);
    terms
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses `?fieldSelector=`.
    pub fn parse(input: &str) -> Result<FieldSelector> {
        let fail = |message: String| Error::FieldSelector {
            input: input.to_string(),
            message,
        };
        let mut requirements = Vec::new();
        for term in split_terms(input) {
            if term.trim().is_empty() {
                continue;
            }
            let found = term.char_indices().find_map(|(i, _)| {
                let rest = &term[i..];
                [
                    ("!=", FieldOperator::NotEquals),
                    ("==", FieldOperator::DoubleEquals),
                    ("=", FieldOperator::Equals),
                ]
                .into_iter()
                .find(|(op, _)| rest.starts_with(op))
                .map(|(op, operator)| (&term[..i], operator, &term[i + op.len()..]))
            });
            let Some((field, operator, value)) = found else {
                return Err(fail(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(fail(format!("term '{term}' has no field name")));
            }
            let value = unescape_field_value(value).map_err(fail)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The terms, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object whose fields `get` reads satisfies every term. A field `get`
    /// returns `None` for counts as empty.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            match r.operator {
                FieldOperator::Equals | FieldOperator::DoubleEquals => have == r.value,
                FieldOperator::NotEquals => have != r.value,
            }
        })
    }

    /// Checks every term's field against what `resource` supports.
    pub fn check_supported(&self, resource: &Resource) -> Result<()> {
        let supported = supported_fields(resource);
        for r in &self.requirements {
            if !supported.contains(&r.field.as_str()) {
                return Err(Error::UnsupportedFieldLabel {
                    resource: resource.group_resource(),
                    field: r.field.clone(),
                    supported: supported.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Whether a JSON object of `resource` satisfies the selector (fields read with
    /// [`field_value`]).
    pub fn matches_object(&self, resource: &Resource, object: &Value) -> bool {
        self.matches(|field| field_value(resource, object, field))
    }

    /// The value an `=`/`==` term requires of `field`, if there is one (so that
    /// `metadata.name=x` can be served as a get).
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.operator {
                FieldOperator::Equals => "=",
                FieldOperator::DoubleEquals => "==",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_field_value(&r.value))?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = Error;
    fn from_str(s: &str) -> Result<FieldSelector> {
        FieldSelector::parse(s)
    }
}

const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const SECRET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const NODE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "spec.unschedulable"];
const NAMESPACE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.phase"];
const REPLICA_SET_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.clusterIP",
    "spec.type",
];

/// The fields `resource` can be selected by, as in Kubernetes.
pub fn supported_fields(resource: &Resource) -> &'static [&'static str] {
    match (resource.group, resource.kind) {
        ("", "Pod") => POD_FIELDS,
        ("", "Event") => EVENT_FIELDS,
        ("", "Secret") => SECRET_FIELDS,
        ("", "Node") => NODE_FIELDS,
        ("", "Namespace") => NAMESPACE_FIELDS,
        ("", "Service") => SERVICE_FIELDS,
        ("apps", "ReplicaSet") => REPLICA_SET_FIELDS,
        ("batch", "Job") => JOB_FIELDS,
        _ => COMMON_FIELDS,
    }
}

/// The value of a selectable field of a JSON object of `resource`, as Kubernetes exposes it
/// to field selectors (absent strings are `""`, absent booleans `false`, absent counts `0`).
/// `None` when the resource does not support the field.
pub fn field_value(resource: &Resource, object: &Value, field: &str) -> Option<String> {
    if !supported_fields(resource).contains(&field) {
        return None;
    }
    let pointer = match field {
        "source" => "/source/component".to_string(),
        _ => format!("/{}", field.replace('.', "/")),
    };
    let default = match field {
        "spec.unschedulable" | "spec.hostNetwork" => "false",
        "status.replicas" | "status.successful" => "0",
        _ => "",
    };
    Some(match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;
    use crate::validation::FieldErrorKind;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_and_print() {
        // (input, canonical string)
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a", "a"),
            ("!a", "!a"),
            ("a in (x,y)", "a in (x,y)"),
            ("a in (y, x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("  a = b ,  c  ", "a=b,c"),
            ("z=1,a=2", "a=2,z=1"),
            ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
            ("a=", "a="),
            ("a in (,x)", "a in (,x)"),
            ("a>5", "a>5"),
            ("a<5", "a<5"),
            ("a=in", "a=in"),
            (
                "env in (prod,staging),tier notin (frontend),!canary,app",
                "app,!canary,env in (prod,staging),tier notin (frontend)",
            ),
        ];
        for (input, want) in cases {
            let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), want, "{input}");
            // The printed form parses back to the same selector.
            assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s, "{input}");
        }
    }

    #[test]
    fn parse_errors_name_position_and_problem() {
        let cases = [
            ("=b", "at position 0: expected a label key, found '='"),
            ("a b", "at position 2: expected an operator"),
            (
                "a in x",
                "at position 5: expected '(', found identifier \"x\"",
            ),
            (
                "a in (x",
                "at position 7: expected ',' or ')', found end of string",
            ),
            (
                "a in ()",
                "at position 0: for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                "a=b c",
                "at position 4: expected ',' or end of string, found identifier \"c\"",
            ),
            (
                "!a=b",
                "at position 2: expected ',' or end of string after '!key', found '='",
            ),
            ("a b=c", "at position 2: expected an operator"),
            (
                "a=b,",
                "at position 4: expected a label key, found end of string",
            ),
            ("a==(", "at position 3: expected a value, found '('"),
            ("A B=c", "at position 2: expected an operator"),
            ("a/b/c=d", "at position 0: invalid label key \"a/b/c\""),
            ("a=-x", "at position 0: invalid label value: \"-x\""),
            (
                "a>x",
                "at position 0: for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).unwrap_err();
            let Error::LabelSelector { message, .. } = &err else {
                panic!("{err:?}")
            };
            assert!(message.starts_with(want), "{input}: {message}");
        }
    }

    #[test]
    fn matching() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "7")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>5", true),
            ("n<5", false),
            ("missing>1", false),
            ("app>1", false),
            ("missing=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("!a").unwrap().matches_opt(None));
    }

    #[test]
    fn from_k8s_selector() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (json!({}), Some("")),
            (
                json!({"matchLabels": {"app": "web", "b": "x"}}),
                Some("app=web,b=x"),
            ),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "tier", "operator": "NotIn", "values": ["db"]},
                    {"key": "zone", "operator": "Exists"},
                ]}),
                Some("app=web,!canary,env in (dev,prod),tier notin (db),zone"),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                None,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                None,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                None,
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}),
                None,
            ),
            (json!({"matchLabels": {"a b": "x"}}), None),
        ];
        for (sel, want) in cases {
            let k: K8sLabelSelector = serde_json::from_value(sel.clone()).unwrap();
            match want {
                Some(s) => assert_eq!(LabelSelector::from_k8s(&k).unwrap().to_string(), s, "{sel}"),
                None => assert!(LabelSelector::from_k8s(&k).is_err(), "{sel}"),
            }
        }
        let k: K8sLabelSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap();
        let s = LabelSelector::try_from(&k).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "db")])));
        assert_eq!(LabelSelector::from_map(&labels(&[("app", "web")])), s);
    }

    #[test]
    fn k8s_selector_validation_paths() {
        use FieldErrorKind::*;
        let cases: Vec<(Value, Vec<(&str, FieldErrorKind)>)> = vec![
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                vec![("spec.selector.matchExpressions[0].values", Required)],
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                vec![("spec.selector.matchExpressions[0].values", Forbidden)],
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Like"}]}),
                vec![("spec.selector.matchExpressions[0].operator", Invalid)],
            ),
            (
                json!({"matchExpressions": [{"key": "a b", "operator": "In", "values": ["-x"]}]}),
                vec![
                    ("spec.selector.matchExpressions[0].key", Invalid),
                    ("spec.selector.matchExpressions[0].values[0]", Invalid),
                ],
            ),
            (
                json!({"matchLabels": {"a": "-"}}),
                vec![("spec.selector.matchLabels", Invalid)],
            ),
        ];
        for (sel, want) in cases {
            let k: K8sLabelSelector = serde_json::from_value(sel.clone()).unwrap();
            let errs = validate_label_selector(&k, &FieldPath::new("spec").child("selector"));
            crate::validation::testutil::assert_errors(&errs, &want, &sel.to_string());
        }
    }

    #[test]
    fn field_selector_parse_print_match() {
        let cases = [
            ("", "", true),
            ("metadata.name=p1", "metadata.name=p1", true),
            ("metadata.name==p1", "metadata.name==p1", true),
            ("metadata.name!=p1", "metadata.name!=p1", false),
            (
                "status.phase=Running,spec.nodeName=n1",
                "status.phase=Running,spec.nodeName=n1",
                true,
            ),
            ("spec.nodeName=", "spec.nodeName=", false),
            ("metadata.name=a\\,b", "metadata.name=a\\,b", false),
            ("metadata.name=x,", "metadata.name=x", false),
        ];
        let pod = json!({"metadata": {"name": "p1", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        for (input, printed, want) in cases {
            let s = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), printed, "{input}");
            assert_eq!(s.matches_object(&registry::POD, &pod), want, "{input}");
            assert!(s.check_supported(&registry::POD).is_ok(), "{input}");
        }
        let s = FieldSelector::parse("metadata.name=a\\,b\\=c\\\\d").unwrap();
        assert_eq!(s.requirements()[0].value, "a,b=c\\d");
        assert_eq!(s.exact_value("metadata.name"), Some("a,b=c\\d"));
        assert_eq!(FieldSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn field_selector_errors() {
        let cases = [
            ("metadata.name", "can't understand"),
            ("metadata.name=a=b", "unescaped ="),
            ("metadata.name=a\\x", "invalid escape sequence"),
            ("metadata.name=a\\", "invalid escape sequence"),
            ("=x", "no field name"),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn kubectl_describe_event_selectors() {
        // kubectl 1.32 and 1.37 order the terms differently; both must select the same events.
        let event = json!({"metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "hello", "namespace": "default", "uid": "bf63"},
            "reason": "Scheduled", "source": {"component": "scheduler"}, "type": "Normal"});
        for input in [
            "involvedObject.name=hello,involvedObject.namespace=default,involvedObject.uid=bf63",
            "involvedObject.namespace=default,involvedObject.uid=bf63,involvedObject.name=hello",
        ] {
            let s = FieldSelector::parse(input).unwrap();
            assert!(s.check_supported(&registry::EVENT).is_ok());
            assert!(s.matches_object(&registry::EVENT, &event), "{input}");
        }
        let s = FieldSelector::parse("source=scheduler,type!=Warning,reason=Scheduled").unwrap();
        assert!(s.matches_object(&registry::EVENT, &event));
    }

    #[test]
    fn supported_fields_and_values() {
        let cases: Vec<(&Resource, Value, &str, Option<&str>)> = vec![
            (
                &registry::POD,
                json!({"spec": {"nodeName": "n"}}),
                "spec.nodeName",
                Some("n"),
            ),
            (&registry::POD, json!({}), "spec.nodeName", Some("")),
            (&registry::POD, json!({}), "spec.hostNetwork", Some("false")),
            (
                &registry::POD,
                json!({"status": {"podIP": "10.0.0.1"}}),
                "status.podIP",
                Some("10.0.0.1"),
            ),
            (&registry::POD, json!({}), "spec.containers", None),
            (
                &registry::NODE,
                json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable",
                Some("true"),
            ),
            (
                &registry::NODE,
                json!({}),
                "spec.unschedulable",
                Some("false"),
            ),
            (&registry::NODE, json!({}), "metadata.namespace", Some("")),
            (
                &registry::SECRET,
                json!({"type": "Opaque"}),
                "type",
                Some("Opaque"),
            ),
            (
                &registry::NAMESPACE,
                json!({"status": {"phase": "Active"}}),
                "status.phase",
                Some("Active"),
            ),
            (
                &registry::REPLICA_SET,
                json!({"status": {"replicas": 3}}),
                "status.replicas",
                Some("3"),
            ),
            (
                &registry::REPLICA_SET,
                json!({}),
                "status.replicas",
                Some("0"),
            ),
            (
                &registry::JOB,
                json!({"status": {"successful": 1}}),
                "status.successful",
                Some("1"),
            ),
            (
                &registry::DEPLOYMENT,
                json!({"metadata": {"name": "d"}}),
                "metadata.name",
                Some("d"),
            ),
            (&registry::DEPLOYMENT, json!({}), "status.replicas", None),
            (
                &registry::EVENT,
                json!({"reportingComponent": "kubelet"}),
                "reportingComponent",
                Some("kubelet"),
            ),
        ];
        for (r, obj, field, want) in cases {
            assert_eq!(
                field_value(r, &obj, field).as_deref(),
                want,
                "{} {field}",
                r.plural
            );
        }
        let err = FieldSelector::parse("spec.foo=x")
            .unwrap()
            .check_supported(&registry::POD)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("spec.foo") && msg.contains("pods") && msg.contains("spec.nodeName"),
            "{msg}"
        );
        assert_eq!(err.code(), 400);
    }
}
