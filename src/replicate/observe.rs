//! Observe: what AWS holds for one destination, as much as the decision needs and no more. In
//! Write mode a destination found owned earlier in the container is not looked at; Compare and
//! Plan modes read its current value when its current version is not the token.

use super::decide::{DestState, Learned, Seen, Want, is_managed_key};
use super::job::{Job, Mode};
use crate::outcome::{Action, Error};
use crate::store::{ReadSecrets, ResolveKeys};
use crate::token;

/// Looks at one destination. `trusted`: found owned earlier in this container.
pub async fn observe<S: ReadSecrets + ResolveKeys>(
    store: &S,
    want: &Want<'_>,
    job: Job,
    trusted: bool,
    learned: Learned,
) -> Result<DestState, (Action, Error)> {
    if trusted && job.mode == Mode::Write && !job.metadata() && learned == Learned::default() {
        return Ok(DestState::new(Seen::Trusted));
    }
    let described = store
        .describe(want.name)
        .await
        .map_err(|e| (Action::None, e))?;
    let Some(d) = described else {
        return Ok(DestState {
            learned,
            ..DestState::new(Seen::Absent)
        });
    };
    // Only the configured key is ever resolved; the managed key needs no DescribeKey.
    let key = match want.kms_key {
        Some(k) if !is_managed_key(k) => Some(store.key(k).await.map_err(|e| (Action::Kms, e))?),
        _ => None,
    };
    let current = d.current_version.as_deref();
    let compares = job.mode != Mode::Write
        // A write with the token was ignored and AWSCURRENT is on another replicator version
        // (one written after a key change): equal bytes need no label move.
        || (learned.token_exists && current.is_some_and(token::is_replicator_token));
    let current_value = if job.value() && compares && !d.deleted && current != Some(want.token) {
        match store.current_value(want.name).await {
            Ok(v) => Some(v.value),
            Err(e) if e.is_aws("ResourceNotFoundException") => None,
            Err(e) => return Err((Action::None, e)),
        }
    } else {
        None
    };
    Ok(DestState {
        seen: Seen::Present(Box::new(d)),
        key,
        current_value,
        learned,
    })
}
