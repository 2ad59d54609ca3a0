//! What a source change asks of its destinations: how (write, compare first, or only plan) and
//! what (the value, the metadata, or both).

/// How destinations are brought in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Events and manual payloads: write, trusting the ownership found earlier in this
    /// container (the ownership check runs once per destination per warm container).
    Write,
    /// `all`: look at each destination first and write only what differs.
    Compare,
    /// `dryRun`: look and report; write nothing.
    Plan,
}

/// What a job brings in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The value (PutSecretValue, rotation, ...).
    Value,
    /// Tags and description where the destination copies them (TagResource, UntagResource).
    /// A destination whose rule selects sources by tag also gets the value: adding the opt-in
    /// tag starts replication at once (SPEC §2).
    Metadata,
    /// Both (UpdateSecret events, `all`).
    Both,
}

/// What one source change asks of its destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub mode: Mode,
    pub scope: Scope,
}

impl Job {
    /// A value event: write the value.
    pub const VALUE: Job = Job {
        mode: Mode::Write,
        scope: Scope::Value,
    };

    /// Whether the value is brought in line.
    pub fn value(self) -> bool {
        matches!(self.scope, Scope::Value | Scope::Both)
    }

    /// Whether tags and description are brought in line.
    pub fn metadata(self) -> bool {
        matches!(self.scope, Scope::Metadata | Scope::Both)
    }

    /// The job for one destination: a tag event also replicates the value to destinations of
    /// rules that select sources by tag.
    pub fn for_destination(self, rule_has_tags: bool) -> Job {
        match self.scope {
            Scope::Metadata if rule_has_tags => Job {
                scope: Scope::Both,
                ..self
            },
            _ => self,
        }
    }
}
