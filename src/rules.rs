//! Which destinations a source goes to: rule matching, name templates, variables, and the
//! loop checks that need no AWS call (SPEC §2, §3.3, §5). Pure.

use crate::config::{Config, Destination};
use crate::outcome::{Action, DestinationRef, Error, Outcome, SkipReason};
use crate::transform::Vars;

/// The source as read at processing time.
#[derive(Debug, Clone)]
pub struct Source {
    pub arn: String,
    pub name: String,
    pub region: String,
    pub account: String,
    /// Its tags, when read (rules with `tags` apply only to sources that carry them).
    pub tags: Option<Vec<(String, String)>>,
}

/// Whether rules' `tags` filters apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tags {
    /// Replication: a rule with `tags` applies only to a source carrying them.
    Filter,
    /// Deletion and restore: ownership decides, not tags (SPEC §2).
    Ignore,
}

/// One destination to write, fully resolved.
#[derive(Debug)]
pub struct Target<'c> {
    pub dest: &'c Destination,
    /// The rule selects its sources by tag.
    pub tag_rule: bool,
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

/// Plans every destination of every rule that matches the source (by name, and by tags unless
/// `tags` says to ignore them). `is_replica` is true when the source's current version was
/// written by a replicator: rules without `chain` skip it.
pub fn plan<'c>(
    config: &'c Config,
    src: &Source,
    is_replica: bool,
    tags: Tags,
) -> Vec<Planned<'c>> {
    let mut planned: Vec<Planned<'c>> = Vec::new();
    let mut seen: Vec<DestinationRef> = Vec::new();
    let applies = |r: &crate::config::Rule| {
        r.matches(&src.name)
            && (tags == Tags::Ignore
                || !r.has_tags()
                || src.tags.as_deref().is_some_and(|t| r.tags_match(t)))
    };
    for rule in config.rules.iter().filter(|r| applies(r)) {
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
                planned.push(skip(SkipReason::Replica));
            } else if at.account == src.account
                && at.region == src.region
                && config.matches_any(&at.name)
            {
                // The copy would itself be a source for some rule: it would feed itself.
                planned.push(skip(SkipReason::Loop));
            } else if seen.contains(&at) {
                planned.push(skip(SkipReason::DuplicateDestination));
            } else {
                seen.push(at.clone());
                planned.push(Planned::Write(Box::new(Target {
                    dest,
                    tag_rule: rule.has_tags(),
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
            tags: None,
        }
    }

    async fn config(doc: &str) -> Config {
        load_document(doc, &NoFetcher).await.unwrap()
    }

    fn plan_f<'c>(c: &'c Config, s: &Source, replica: bool) -> Vec<Planned<'c>> {
        plan(c, s, replica, Tags::Filter)
    }

    fn summary(p: &[Planned<'_>]) -> Vec<String> {
        p.iter()
            .map(|p| match p {
                Planned::Write(t) => {
                    format!("write {}:{}:{}", t.at.account, t.at.region, t.at.name)
                }
                Planned::Done(o) => {
                    format!(
                        "{:?} {}",
                        o.status,
                        o.reason.map(|r| r.as_str()).unwrap_or_default()
                    )
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
            summary(&plan_f(&c, &src("app/prod/db"), false)),
            [
                "write 111122223333:us-west-2:dr/app/prod/db",
                "write 222233334444:eu-west-1:app/prod/db-prod"
            ]
        );
        assert!(plan_f(&c, &src("app/scratch/x"), false).is_empty());
        assert_eq!(
            summary(&plan_f(&c, &src("shared/db-main"), false)),
            ["write 111122223333:us-west-2:shared/db-main"]
        );
        // `*` stays inside one segment.
        assert!(plan_f(&c, &src("shared/db-x/y"), false).is_empty());
        // Case-sensitive.
        assert!(plan_f(&c, &src("App/prod/db"), false).is_empty());
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
            summary(&plan_f(&c, &src("app/db"), false)),
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
            summary(&plan_f(&c, &src("a/b"), true)),
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
            summary(&plan_f(&c, &src("a/b"), false)),
            [
                "write 111122223333:us-west-2:a/b",
                "Skipped duplicate_destination"
            ]
        );
    }

    fn tagged(name: &str, tags: &[(&str, &str)]) -> Source {
        Source {
            tags: Some(
                tags.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..src(name)
        }
    }

    #[tokio::test]
    async fn a_rule_with_tags_applies_only_to_sources_carrying_them() {
        let c = config(
            r#"{"rules":[
              {"name":"opt-in","match":["app/**"],"tags":{"replicate":"dr","team":"*"},
               "destinations":[{"region":"us-west-2"}]},
              {"match":["app/**"],"destinations":[{"region":"eu-west-1"}]}
            ]}"#,
        )
        .await;
        type Case<'a> = (&'a [(&'a str, &'a str)], Vec<&'a str>);
        let cases: [Case; 4] = [
            (
                &[("replicate", "dr"), ("team", "payments")],
                vec![
                    "write 111122223333:us-west-2:app/db",
                    "write 111122223333:eu-west-1:app/db",
                ],
            ),
            // `*` needs the key, any value; a wrong value or a missing key is no match.
            (
                &[("replicate", "dr")],
                vec!["write 111122223333:eu-west-1:app/db"],
            ),
            (
                &[("replicate", "DR"), ("team", "x")],
                vec!["write 111122223333:eu-west-1:app/db"],
            ),
            (&[], vec!["write 111122223333:eu-west-1:app/db"]),
        ];
        for (tags, want) in cases {
            assert_eq!(
                summary(&plan(&c, &tagged("app/db", tags), false, Tags::Filter)),
                want,
                "{tags:?}"
            );
        }
        // Unknown tags: a rule with tags does not apply; deletion ignores tags.
        assert_eq!(
            summary(&plan(&c, &src("app/db"), false, Tags::Filter)),
            ["write 111122223333:eu-west-1:app/db"]
        );
        assert_eq!(
            summary(&plan(&c, &src("app/db"), false, Tags::Ignore)).len(),
            2
        );
    }
}
