//! The world most integration tests start from, built in one line instead of a preamble in every
//! test: a moto server (corrected, and enforcing the function's IAM policy, as the launcher
//! starts it), admin clients for the function's region and the second region, and the function
//! itself built on that moto from a config document.
//!
//! ```ignore
//! let w = World::start().await;
//! let World { moto, east, west } = &w;
//! let source = w.seed("app/db", "v1").await;
//! let app = w.app(&config).await;
//! ```

use super::Moto;
use super::app::{Seeded, app_with, seed_secret, sm};
use super::moto::PrimaryRegion;
use aws_sdk_secretsmanager::Client as Sm;
use secret_replicator::app::App;
use secret_replicator::aws::AwsStores;

/// One moto and the clients a test inspects it with.
pub struct World {
    pub moto: Moto,
    /// The source account in the function's region (us-east-1), admin credentials.
    pub east: Sm,
    /// The source account in the other region (us-west-2), admin credentials.
    pub west: Sm,
}

impl World {
    /// A fresh moto with the default IAM setup.
    pub async fn start() -> World {
        World::on(Moto::start()).await
    }

    /// A fresh moto with the default IAM setup, answering `PrimaryRegion` in this shape.
    pub async fn with_primary_region(shape: PrimaryRegion) -> World {
        World::on(Moto::start_with_primary_region(shape)).await
    }

    /// The clients for a moto started some other way (`Moto::start_with`).
    pub async fn on(moto: Moto) -> World {
        let endpoint = moto.endpoint();
        World {
            east: sm(&endpoint, "us-east-1").await,
            west: sm(&endpoint, "us-west-2").await,
            moto,
        }
    }

    pub fn endpoint(&self) -> String {
        self.moto.endpoint()
    }

    /// A fresh container of the function with this config document.
    pub async fn app(&self, config: &str) -> App<AwsStores> {
        app_with(config, &self.endpoint()).await
    }

    /// A source secret in the function's region.
    pub async fn seed(&self, name: &str, value: &str) -> Seeded {
        seed_secret(&self.east, name, value).await
    }
}
