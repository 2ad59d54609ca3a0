//! `REPLICATOR_CONFIG_SECRET` and `secret:` transforms against moto: read at start-up, re-read
//! after the TTL, and a bad reload keeps the last good configuration.

mod common;

use common::Moto;
use common::app::{REGION, app_from, current, manual, ok, put_value, sdk_config, seed_secret, sm};
use secret_replicator::settings::{Env, Settings};
use std::time::Duration;

fn doc(dest: &str) -> String {
    format!(
        r#"{{"rules":[{{"match":["app/**"],"destinations":[{{"region":"us-west-2","name":"{dest}/${{SECRET_NAME}}","transforms":["secret:cfg/sed"]}}]}}]}}"#
    )
}

#[tokio::test]
async fn the_config_secret_is_reloaded_after_its_ttl_and_a_bad_reload_keeps_the_last_good() {
    let moto = Moto::start();
    let src = sm(&moto.endpoint(), REGION).await;
    seed_secret(&src, "cfg/replicator", &doc("one")).await;
    seed_secret(&src, "cfg/sed", "s/east/west/g").await;
    seed_secret(&src, "app/db", "host-east").await;
    let settings = Settings::from_env(&Env::from_pairs([
        ("REPLICATOR_CONFIG_SECRET", "cfg/replicator"),
        ("REPLICATOR_CONFIG_TTL_SECONDS", "1"),
        ("AWS_REGION", REGION),
    ]))
    .unwrap();
    let app = app_from(settings, sdk_config(&moto.endpoint()).await).await;
    let west = sm(&moto.endpoint(), "us-west-2").await;

    ok(app.handle(&manual("app/db")).await);
    assert_eq!(
        current(&west, "one/app/db").await.as_deref(),
        Some("host-west")
    );

    // A broken document: after the TTL the reload fails, the last good config stays.
    put_value(
        &src,
        "cfg/replicator",
        r#"{"rules":[{"destinations":[{"regoin":"x"}]}]}"#,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put_value(&src, "app/db", "host-east-2").await;
    let d = ok(app.handle(&manual("app/db")).await);
    assert_eq!(d["results"][0]["destination"]["name"], "one/app/db", "{d}");
    assert_eq!(
        current(&west, "one/app/db").await.as_deref(),
        Some("host-west-2")
    );

    // A good one (and a changed secret: transform): picked up after the TTL.
    put_value(&src, "cfg/replicator", &doc("two")).await;
    put_value(&src, "cfg/sed", "s/east/WEST/g").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ok(app.handle(&manual("app/db")).await);
    assert_eq!(
        current(&west, "two/app/db").await.as_deref(),
        Some("host-WEST-2")
    );
}

#[tokio::test]
async fn an_unreadable_config_secret_fails_start_up_naming_the_variable() {
    let moto = Moto::start();
    let settings = Settings::from_env(&Env::from_pairs([
        ("REPLICATOR_CONFIG_SECRET", "cfg/missing"),
        ("AWS_REGION", REGION),
    ]))
    .unwrap();
    let stores = secret_replicator::aws::AwsStores::new(
        sdk_config(&moto.endpoint()).await,
        "secret-replicator",
    );
    let err = match secret_replicator::app::App::new(
        settings,
        stores,
        secret_replicator::metrics::Metrics::OFF,
    )
    .await
    {
        Ok(_) => panic!("a missing config secret must fail start-up"),
        Err(e) => e,
    };
    assert_eq!(
        err.kind(),
        secret_replicator::outcome::ErrorKind::InvalidConfig
    );
    assert!(
        err.to_string()
            .starts_with("REPLICATOR_CONFIG_SECRET: cannot read cfg/missing"),
        "{err}"
    );
}
