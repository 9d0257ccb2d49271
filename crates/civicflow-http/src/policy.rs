//! Route policies: who may call a route at all. Finer rules (which case, which action, which
//! stage) are the engine's.

use civicflow_core::domain::org::Acting;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Anyone, without a token.
    Public,
    /// Any valid token.
    Authenticated,
    /// A valid token whose role is one of these.
    Roles(&'static [&'static str]),
}

impl Policy {
    /// Whether the route needs a token.
    pub fn needs_token(self) -> bool {
        !matches!(self, Policy::Public)
    }

    /// Whether `caller` may call a route with this policy.
    pub fn allows(self, caller: Option<&Acting>) -> bool {
        match (self, caller) {
            (Policy::Public, _) => true,
            (_, None) => false,
            (Policy::Authenticated, Some(_)) => true,
            (Policy::Roles(roles), Some(acting)) => roles.contains(&acting.role.as_str()),
        }
    }

    /// For the OpenAPI document and error messages.
    pub fn describe(self) -> String {
        match self {
            Policy::Public => "public".into(),
            Policy::Authenticated => "any valid token".into(),
            Policy::Roles(roles) => format!("tokens with the role {}", roles.join(", ")),
        }
    }
}
