//! Which destinations a source goes to: rule matching, name templates, variables, and the
//! loop checks that need no AWS call (SPEC §2, §3.3, §5). Pure.

use crate::config::{Config, Destination, Rule};
use crate::outcome::{Action, DestinationRef, Error, Outcome};
use crate::transform::Vars;

/// The source as read at processing time.
#[derive(Debug, Clone)]
pub struct Source {
    pub arn: String,
    pub name: String,
    pub region: String,
    pub account: String,
}

/// One destination to write, fully resolved.
#[derive(Debug)]
pub struct Target<'c> {
    pub rule: &'c Rule,
    pub dest: &'c Destination,
    pub at: DestinationRef,
    /// Every variable a transform of this destination may use.
    pub vars: Vars,
}

/// What to do for one (rule, destination) pair.
#[derive(Debug)]
pub enum Planned<'c> {
    Write(Box<Target<'c>>),
    /// Skipped or failed before any AWS call; the outcome says which.
    Done(Box<Outcome>),
}

/// Skip reasons decided here.
pub mod reason {
    pub const NO_MATCHING_RULE: &str = "no_matching_rule";
    pub const REPLICA: &str = "replica";
    pub const LOOP: &str = "loop";
    pub const DUPLICATE_DESTINATION: &str = "duplicate_destination";
}

/// The account in an ARN (`arn:partition:service:region:account:...`).
pub fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()))
}

/// The region in an ARN.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Plans every destination of every rule that matches the source. `is_replica` is true when the
/// source's current version was written by a replicator: rules without `chain` skip it.
pub fn plan<'c>(config: &'c Config, src: &Source, is_replica: bool) -> Vec<Planned<'c>> {
    let mut planned: Vec<Planned<'c>> = Vec::new();
    let mut seen: Vec<DestinationRef> = Vec::new();
    for rule in config.rules.iter().filter(|r| r.matches(&src.name)) {
        for dest in &rule.destinations {
            let region = dest.region.clone().unwrap_or_else(|| src.region.clone());
            let account = dest
                .role
                .as_ref()
                .map(|r| r.account.clone())
                .unwrap_or_else(|| src.account.clone());
            let mut vars = dest.variables.iter().fold(Vars::new(), |mut v, (k, val)| {
                v.set(k.clone(), val.clone());
                v
            });
            vars.set("SECRET_NAME", src.name.clone());
            vars.set("SOURCE_REGION", src.region.clone());
            vars.set("SOURCE_ACCOUNT", src.account.clone());
            vars.set("DEST_REGION", region.clone());
            vars.set("DEST_ACCOUNT", account.clone());
            let name = match dest.name.render(&vars) {
                Ok(n) if !n.is_empty() => n,
                Ok(_) => {
                    let err = Error::InvalidConfig(format!(
                        "{}.name: renders to an empty name",
                        dest.label
                    ));
                    planned.push(Planned::Done(Box::new(Outcome::failed(
                        &src.arn,
                        None,
                        Action::None,
                        &err,
                    ))));
                    continue;
                }
                Err(e) => {
                    let err = Error::InvalidConfig(format!("{}.name: {e}", dest.label));
                    planned.push(Planned::Done(Box::new(Outcome::failed(
                        &src.arn,
                        None,
                        Action::None,
                        &err,
                    ))));
                    continue;
                }
            };
            vars.set("DEST_SECRET_NAME", name.clone());
            let at = DestinationRef {
                region,
                account,
                name,
            };
            let skip = |reason| {
                Planned::Done(Box::new(Outcome::skipped(
                    &src.arn,
                    Some(at.clone()),
                    reason,
                )))
            };
            if is_replica && !rule.chain {
                planned.push(skip(reason::REPLICA));
            } else if at.account == src.account
                && at.region == src.region
                && config.matches_any(&at.name)
            {
                // The copy would itself be a source for some rule: it would feed itself.
                planned.push(skip(reason::LOOP));
            } else if seen.contains(&at) {
                planned.push(skip(reason::DUPLICATE_DESTINATION));
            } else {
                seen.push(at.clone());
                planned.push(Planned::Write(Box::new(Target {
                    rule,
                    dest,
                    at,
                    vars,
                })));
            }
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NoFetcher, load_document};

    fn src(name: &str) -> Source {
        Source {
            arn: format!("arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}-AbCdEf"),
            name: name.into(),
            region: "us-east-1".into(),
            account: "111122223333".into(),
        }
    }

    async fn config(doc: &str) -> Config {
        load_document(doc, &NoFetcher).await.unwrap()
    }

    fn summary(p: &[Planned<'_>]) -> Vec<String> {
        p.iter()
            .map(|p| match p {
                Planned::Write(t) => {
                    format!("write {}:{}:{}", t.at.account, t.at.region, t.at.name)
                }
                Planned::Done(o) => {
                    format!("{:?} {}", o.status, o.reason.clone().unwrap_or_default())
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn globs_templates_and_accounts_resolve() {
        let c = config(
            r#"{"rules":[
              {"match":["app/**"],"exclude":["app/scratch/**"],"destinations":[
                {"region":"us-west-2","name":"dr/${SECRET_NAME}"},
                {"region":"eu-west-1","account_role_arn":"arn:aws:iam::222233334444:role/r","name":"${SECRET_NAME}-${ENV}","variables":{"ENV":"prod"}}
              ]},
              {"match":["shared/db-*"],"destinations":[{"region":"us-west-2"}]}
            ]}"#,
        )
        .await;
        assert_eq!(
            summary(&plan(&c, &src("app/prod/db"), false)),
            [
                "write 111122223333:us-west-2:dr/app/prod/db",
                "write 222233334444:eu-west-1:app/prod/db-prod"
            ]
        );
        assert!(plan(&c, &src("app/scratch/x"), false).is_empty());
        assert_eq!(
            summary(&plan(&c, &src("shared/db-main"), false)),
            ["write 111122223333:us-west-2:shared/db-main"]
        );
        // `*` stays inside one segment.
        assert!(plan(&c, &src("shared/db-x/y"), false).is_empty());
        // Case-sensitive.
        assert!(plan(&c, &src("App/prod/db"), false).is_empty());
    }

    #[tokio::test]
    async fn a_same_region_copy_that_a_rule_matches_is_a_loop() {
        let c = config(
            r#"{"rules":[{"match":["app/**"],"destinations":[
                {"name":"app/copy/${SECRET_NAME}"},
                {"name":"copy/${SECRET_NAME}"},
                {"region":"us-east-1","account_role_arn":"arn:aws:iam::222233334444:role/r"}
            ]}]}"#,
        )
        .await;
        assert_eq!(
            summary(&plan(&c, &src("app/db"), false)),
            [
                "Skipped loop",
                "write 111122223333:us-east-1:copy/app/db",
                "write 222233334444:us-east-1:app/db"
            ]
        );
    }

    #[tokio::test]
    async fn replicas_are_skipped_unless_the_rule_chains() {
        let c = config(
            r#"{"rules":[
              {"match":["a/**"],"destinations":[{"region":"us-west-2"}]},
              {"match":["a/**"],"chain":true,"destinations":[{"region":"eu-west-1"}]}
            ]}"#,
        )
        .await;
        assert_eq!(
            summary(&plan(&c, &src("a/b"), true)),
            ["Skipped replica", "write 111122223333:eu-west-1:a/b"]
        );
    }

    #[tokio::test]
    async fn the_same_destination_from_two_rules_is_written_once() {
        let c = config(
            r#"{"rules":[
              {"match":["a/**"],"destinations":[{"region":"us-west-2"}]},
              {"match":["**"],"destinations":[{"region":"us-west-2"}]}
            ]}"#,
        )
        .await;
        assert_eq!(
            summary(&plan(&c, &src("a/b"), false)),
            [
                "write 111122223333:us-west-2:a/b",
                "Skipped duplicate_destination"
            ]
        );
    }

    #[test]
    fn arn_parts() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:a/b-AbCdEf";
        assert_eq!(arn_account(arn), Some("111122223333"));
        assert_eq!(arn_region(arn), Some("us-east-1"));
        assert_eq!(arn_account("app/db"), None);
    }
}
