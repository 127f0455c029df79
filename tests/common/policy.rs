//! The IAM policies `template.yaml` gives each function, read as statements, and the check of
//! recorded calls against them both ways: every call allowed, every allowed action used.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::recorder::Call;

/// One `Allow` statement of a function's inline policy, with resources as logical ids.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// `ForAllValues:StringLike` patterns on `dynamodb:LeadingKeys`, when the statement has them.
    pub leading_keys: Option<Vec<String>>,
}

/// A recorded call, its table or queue mapped to the template's logical resource.
#[derive(Debug, Clone)]
pub struct ResourceCall {
    pub action: String,
    pub resource: String,
    pub leading_keys: Vec<String>,
}

pub fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml is readable");
    serde_yaml::from_str(&text).expect("template.yaml is valid YAML")
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(|v| strings(v, what)).collect(),
        other => panic!("{what} is not a string or a list of strings: {other:?}"),
    }
}

/// `!GetAtt X.Arn` is resource `X`; nothing else is understood, so a wildcard or an ARN
/// written out fails here rather than slipping past the check.
fn resources(value: &Value, sid: &str) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().flat_map(|v| resources(v, sid)).collect(),
        Value::Tagged(tagged) if tagged.tag == "!GetAtt" => {
            let target = tagged.value.as_str().unwrap_or_default();
            let logical = target.strip_suffix(".Arn").unwrap_or_else(|| {
                panic!("statement {sid}: resource !GetAtt {target} is not an .Arn")
            });
            vec![logical.to_owned()]
        }
        other => panic!("statement {sid}: resource {other:?} is not !GetAtt <Resource>.Arn"),
    }
}

fn leading_keys(condition: &Value, sid: &str) -> Option<Vec<String>> {
    if condition.is_null() {
        return None;
    }
    let operators = condition.as_mapping().expect("Condition is a mapping");
    assert!(
        operators.len() == 1,
        "statement {sid}: only one ForAllValues:StringLike condition is understood"
    );
    let keys = &condition["ForAllValues:StringLike"];
    let keys_map = keys.as_mapping().unwrap_or_else(|| {
        panic!("statement {sid}: only ForAllValues:StringLike conditions are understood")
    });
    assert!(
        keys_map.len() == 1,
        "statement {sid}: only dynamodb:LeadingKeys conditions are understood"
    );
    Some(strings(
        &keys["dynamodb:LeadingKeys"],
        "dynamodb:LeadingKeys",
    ))
}

/// The statements of `function`'s `Policies`. Policy templates, managed policies and `Deny`
/// are refused: the check below reasons about inline `Allow` statements only.
pub fn statements(template: &Value, function: &str) -> Vec<Statement> {
    let policies = template["Resources"][function]["Properties"]["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{function} has no Policies list"));
    policies
        .iter()
        .flat_map(|policy| {
            policy["Statement"]
                .as_sequence()
                .cloned()
                .unwrap_or_else(|| {
                    panic!("{function}: only inline policy documents are understood: {policy:?}")
                })
        })
        .map(|statement| {
            let sid = statement["Sid"].as_str().unwrap_or("(no Sid)").to_owned();
            assert_eq!(
                statement["Effect"].as_str(),
                Some("Allow"),
                "{function} statement {sid}: only Allow is understood"
            );
            Statement {
                actions: strings(&statement["Action"], "Action"),
                resources: resources(&statement["Resource"], &sid),
                leading_keys: leading_keys(&statement["Condition"], &sid),
                sid,
            }
        })
        .collect()
}

/// `*` matches any run of characters, `?` exactly one: IAM's StringLike.
pub fn like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

impl Statement {
    /// Whether this statement allows `call`. A call whose partition keys are unknown is not
    /// allowed by a statement with a `LeadingKeys` condition.
    pub fn allows(&self, call: &ResourceCall) -> bool {
        self.actions.contains(&call.action)
            && self.resources.contains(&call.resource)
            && match &self.leading_keys {
                None => true,
                Some(patterns) => {
                    !call.leading_keys.is_empty()
                        && call
                            .leading_keys
                            .iter()
                            .all(|key| patterns.iter().any(|p| like(p, key)))
                }
            }
    }
}

/// Maps each recorded call's table or queue to a logical resource with `resource_of`.
pub fn to_resources(calls: &[Call], resource_of: impl Fn(&str) -> String) -> Vec<ResourceCall> {
    calls
        .iter()
        .map(|c| ResourceCall {
            action: c.action.clone(),
            resource: resource_of(&c.resource),
            leading_keys: c.leading_keys.clone(),
        })
        .collect()
}

/// Every way `function`'s calls and its role disagree: a call no statement allows (it would be
/// AccessDenied on AWS), and an action a statement grants on a resource that no call used (a
/// permission the code does not need).
pub fn disagreements(
    function: &str,
    statements: &[Statement],
    calls: &[ResourceCall],
) -> Vec<String> {
    let mut problems = Vec::new();
    // One line per refused action and resource, with one of the partition keys refused.
    let mut refused: BTreeMap<(&str, &str), &[String]> = BTreeMap::new();
    for call in calls {
        if !statements.iter().any(|s| s.allows(call)) {
            refused
                .entry((&call.action, &call.resource))
                .or_insert(&call.leading_keys);
        }
    }
    for ((action, resource), keys) in refused {
        problems.push(format!(
            "{function} calls {action} on {resource} (partition keys such as {keys:?}) but its role does not allow it"
        ));
    }
    for statement in statements {
        for action in &statement.actions {
            for resource in &statement.resources {
                let used = calls
                    .iter()
                    .any(|c| &c.action == action && &c.resource == resource && statement.allows(c));
                if !used {
                    problems.push(format!(
                        "{function}'s role allows {action} on {resource} (statement {}) but no call used it",
                        statement.sid
                    ));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}
