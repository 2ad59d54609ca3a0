//! One destination of a rule, validated field by field and compiled: its role, region,
//! external id, key, variables, name template and transform chain (SPEC §2).

use super::transforms::{fingerprint, load_transform};
use super::{Destination, Naming, RawDestination, Role, TextFetcher};
use crate::transform::{self, Chain, LoadVars, Template, Vars};
use std::sync::Arc;

pub(super) async fn destination(
    rd: RawDestination,
    path: &str,
    naming: Naming,
    fetcher: &impl TextFetcher,
    errors: &mut Vec<String>,
) -> Option<Destination> {
    let before = errors.len();
    let f = |field: &str| naming.field(path, field);
    if let Some(r) = rd.region.as_deref().filter(|r| !valid_region(r)) {
        errors.push(format!(
            "{}: expected an AWS region such as us-west-2, got {r:?}",
            f("region")
        ));
    }
    let role = match &rd.account_role_arn {
        None => {
            if rd.external_id.is_some() {
                errors.push(format!(
                    "{}: only meaningful with account_role_arn",
                    f("external_id")
                ));
            }
            None
        }
        Some(arn) => match crate::arn::role_account(arn) {
            None => {
                errors.push(format!(
                    "{}: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got {arn:?}",
                    f("account_role_arn")
                ));
                None
            }
            Some(account) => Some(Role {
                arn: arn.clone(),
                account,
                external_id: rd.external_id.clone(),
            }),
        },
    };
    if let Some(x) = &rd.external_id {
        let ok = (2..=1224).contains(&x.len())
            && x.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
        if !ok {
            errors.push(format!(
                "{}: 2 to 1224 characters of letters, digits and +=,.@:/-_",
                f("external_id")
            ));
        }
    }
    if rd
        .kms_key_id
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        errors.push(format!("{}: must not be empty", f("kms_key_id")));
    }
    for k in rd.variables.keys() {
        let well_formed = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            errors.push(format!(
                "{}.{k}: variable names are letters, digits and _",
                f("variables")
            ));
        } else if transform::BUILTIN_VARS.contains(&k.as_str()) {
            errors.push(format!(
                "{}.{k}: shadows a built-in variable",
                f("variables")
            ));
        }
    }

    // Names known to templates: built-ins plus this destination's variables; a name template
    // cannot use DEST_SECRET_NAME (it defines it).
    let user_vars: Vars = rd.variables.iter().fold(Vars::new(), |mut v, (k, val)| {
        v.set(k.clone(), val.clone());
        v
    });
    let mut fixed = user_vars.clone();
    if let Some(r) = &rd.region {
        fixed.set("DEST_REGION", r.clone());
    }
    let all_names: Vec<String> = transform::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .chain(rd.variables.keys().cloned())
        .collect();
    let name_vars = LoadVars::new(
        all_names
            .iter()
            .filter(|n| n.as_str() != "DEST_SECRET_NAME")
            .cloned(),
        fixed.clone(),
    );
    let name_text = rd
        .name
        .clone()
        .unwrap_or_else(|| "${SECRET_NAME}".to_string());
    let name = match Template::parse(&name_text, &name_vars) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("{}: {e}", f("name")));
            None
        }
    };
    let load_vars = LoadVars::new(all_names, fixed);
    let mut items = Vec::new();
    let mut canonical = Vec::new();
    for (ti, reference) in rd.transforms.iter().enumerate() {
        let field = f(&format!("transforms[{ti}]"));
        match load_transform(reference, &load_vars, fetcher).await {
            Ok(t) => {
                canonical.push(t.canonical());
                items.push(Arc::new(t));
            }
            Err(msg) => errors.push(format!("{field}: {msg}")),
        }
    }
    if errors.len() > before {
        return None;
    }
    let name = name?;
    let fingerprint = fingerprint(&canonical, &rd.variables, rd.kms_key_id.as_deref());
    Some(Destination {
        label: path.to_string(),
        region: rd.region,
        role,
        name,
        kms_key_id: rd.kms_key_id,
        transforms: Chain::new(items),
        variables: rd.variables,
        copy_tags: rd.copy_tags,
        copy_description: rd.copy_description,
        delete_with_source: rd.delete_with_source,
        adopt: rd.adopt,
        fingerprint,
    })
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}
