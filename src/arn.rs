//! ARNs (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`), parsed in one place: the region and
//! account of any ARN, the name inside a full secret ARN, the account of an IAM role ARN.

/// The parts of an ARN, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN; None when it does not start with `arn:` or has fewer than six parts.
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// True for anything shaped like an ARN.
pub fn is_arn(s: &str) -> bool {
    s.starts_with("arn:")
}

/// The region of an ARN, when it names one.
pub fn region(arn: &str) -> Option<&str> {
    Arn::parse(arn).map(|a| a.region).filter(|r| !r.is_empty())
}

/// The account of an ARN, when it is a 12-digit account id.
pub fn account(arn: &str) -> Option<&str> {
    Arn::parse(arn)
        .map(|a| a.account)
        .filter(|a| a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()))
}

/// The secret name inside a **full** secret ARN (one AWS returned, as in `responseElements`):
/// the resource part minus `secret:` and the fixed 7-character suffix (`-AbCdEf`). A partial
/// ARN is never stripped by guessing (SPEC §4): only call this on ARNs AWS returned.
pub fn secret_name_if_full(arn: &str) -> Option<String> {
    let a = Arn::parse(arn)?;
    let name_and_suffix = a.resource.strip_prefix("secret:")?;
    let (head, suffix) = name_and_suffix.split_at_checked(name_and_suffix.len().checked_sub(7)?)?;
    let suffix_ok =
        suffix.starts_with('-') && suffix[1..].chars().all(|c| c.is_ascii_alphanumeric());
    (suffix_ok && !head.is_empty()).then(|| head.to_string())
}

/// Every name a secret ARN of unknown shape may stand for: the name of a full ARN (its fixed
/// `-XXXXXX` suffix dropped) and the resource of a partial ARN (no suffix). For deciding that no
/// rule could want a secret before reading it, never for naming it (SPEC §4: a partial ARN is
/// never stripped by guessing). Empty when `arn` is not a secret ARN.
pub fn possible_secret_names(arn: &str) -> Vec<String> {
    let Some(resource) = Arn::parse(arn).and_then(|a| a.resource.strip_prefix("secret:")) else {
        return Vec::new();
    };
    let mut names = vec![resource.to_string()];
    names.extend(secret_name_if_full(arn));
    names
}

/// The account of an IAM role ARN (`arn:aws:iam::123456789012:role/path/name`), or None when
/// it is not one.
pub fn role_account(arn: &str) -> Option<String> {
    let a = Arn::parse(arn)?;
    if !a.partition.starts_with("aws") || a.service != "iam" {
        return None;
    }
    let name_ok = a.resource.strip_prefix("role/").is_some_and(|n| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    });
    (a.account.len() == 12 && a.account.chars().all(|c| c.is_ascii_digit()) && name_ok)
        .then(|| a.account.to_string())
}

/// A KMS alias name (`alias/NAME`) from an alias name or an alias ARN.
pub fn kms_alias(key: &str) -> Option<&str> {
    if key.starts_with("alias/") {
        return Some(key);
    }
    Arn::parse(key)
        .filter(|a| a.service == "kms")
        .map(|a| a.resource)
        .filter(|r| r.starts_with("alias/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arn_of_unknown_shape_may_stand_for_two_names() {
        let full = "arn:aws:secretsmanager:us-east-1:111122223333:secret:rds/db-AbCdEf";
        assert_eq!(possible_secret_names(full), ["rds/db-AbCdEf", "rds/db"]);
        let partial = "arn:aws:secretsmanager:us-east-1:111122223333:secret:rds/db";
        assert_eq!(possible_secret_names(partial), ["rds/db"]);
        assert!(possible_secret_names("rds/db").is_empty());
        assert!(possible_secret_names("arn:aws:iam::111122223333:role/r").is_empty());
    }

    #[test]
    fn parts_of_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbCdEf";
        assert_eq!(region(arn), Some("us-east-1"));
        assert_eq!(account(arn), Some("111122223333"));
        assert_eq!(account("app/db"), None);
        assert_eq!(region("app/db"), None);
        assert_eq!(region("arn:aws:iam::111122223333:role/r"), None);
        assert!(is_arn(arn));
    }

    #[test]
    fn names_come_out_of_full_secret_arns_only() {
        let cases = [
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbCdEf",
                Some("a/b"),
            ),
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:x-y-z-Ab12Cd",
                Some("x-y-z"),
            ),
            // Partial ARN: the last part is the name's own.
            (
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b",
                None,
            ),
            ("arn:aws:secretsmanager:us-east-1:1:secret:-AbCdEf", None),
            ("arn:aws:kms:us-east-1:111122223333:key/abc-AbCdEf", None),
            ("plain-name", None),
        ];
        for (arn, want) in cases {
            assert_eq!(secret_name_if_full(arn).as_deref(), want, "{arn}");
        }
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            role_account("arn:aws:iam::222233334444:role/secret-replicator/dest").as_deref(),
            Some("222233334444")
        );
        assert_eq!(
            role_account("arn:aws-us-gov:iam::222233334444:role/x").as_deref(),
            Some("222233334444")
        );
        for bad in [
            "",
            "arn:aws:iam::2222:role/x",
            "arn:aws:iam::222233334444:user/x",
            "arn:aws:sts::222233334444:role/x",
            "role/x",
            "arn:aws:iam::222233334444:role/",
        ] {
            assert_eq!(role_account(bad), None, "{bad}");
        }
    }

    #[test]
    fn kms_aliases() {
        assert_eq!(kms_alias("alias/dr"), Some("alias/dr"));
        assert_eq!(
            kms_alias("arn:aws:kms:us-west-2:111122223333:alias/dr"),
            Some("alias/dr")
        );
        assert_eq!(kms_alias("arn:aws:kms:us-west-2:111122223333:key/k"), None);
        assert_eq!(kms_alias("1234abcd-12ab"), None);
    }
}
