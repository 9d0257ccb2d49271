//! `civicflow serve --demo`: the Tonghui demo's data and a token for every demo actor.

use serde::Serialize;

/// One demo token, as `demo-tokens.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DemoToken {
    /// The secret.
    pub token: String,
    /// The role it acts in.
    pub role: String,
    /// The unit it acts at.
    pub unit_id: String,
    /// The actor's name.
    pub name: String,
}
