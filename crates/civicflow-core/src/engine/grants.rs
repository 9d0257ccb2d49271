//! What a grant's revocation sets off: the tokens issued for it are revoked too, each a
//! `TokenRevoked` event whose cause is the `RoleRevoked` event, so that a holder of such a
//! token can do nothing in the role from then on, and a later grant of the same role does not
//! bring old tokens back.
//!
//! The tokens' stream is another aggregate, so their revocations are a second append after the
//! chart's; each is keyed (`role-revoked:<token>:<event>`), so a retry never revokes twice. A
//! crash between the two appends leaves a token that the chart no longer backs: the engine
//! refuses every command of it ([`OrgChart::check_acting`](crate::domain::org::OrgChart)), and
//! the service refuses the token itself ([`Engine::holds`]), so nothing is acted in a revoked
//! role meanwhile.

use super::execute::{How, Keyed, Target};
use super::{read, Engine, Outcome, SubmitError};
use crate::domain::access::{access_stream, Access, AccessCommand};
use crate::domain::org::{Acting, Org, OrgCommand};
use crate::ids::{CausationId, IdempotencyKey};

impl Engine {
    /// Whether `acting`'s grant holds now in the chart the engine keeps (the system's always
    /// does): what a token is worth once its role was revoked.
    pub fn holds(&self, acting: &Acting) -> bool {
        read(&self.org).state.check_acting(acting).is_ok()
    }

    /// Revokes a role, then the tokens issued for it.
    pub(super) fn revoke_role(
        &self,
        acting: &Acting,
        command: OrgCommand,
        how: &How,
    ) -> Result<Outcome, SubmitError> {
        let OrgCommand::RevokeRole { actor, role, unit } = &command else {
            return self
                .execute::<Org>(acting, Target::Existing(()), &command, how, None)
                .map(|done| done.outcome(&command));
        };
        let done = self.execute::<Org>(acting, Target::Existing(()), &command, how, None)?;
        let revoked = Acting::new(actor.clone(), role.clone(), unit.clone());
        let tokens = self.load::<Access>(&access_stream())?.state;
        // The cause is the `RoleRevoked` just written; a revocation that wrote nothing (the role
        // was revoked already) still revokes tokens a crash left behind, without a cause.
        let cause = match done.position.filter(|_| done.events > 0) {
            Some(position) => self
                .log
                .read_all(position, 1)?
                .into_iter()
                .next()
                .map(|event| event.event_id),
            None => None,
        };
        let system = Acting::system(unit.clone());
        for grant in tokens.valid().filter(|g| g.acting == revoked) {
            let key = IdempotencyKey::new(format!(
                "role-revoked:{}:{}",
                grant.token,
                cause.map_or_else(|| "none".to_owned(), |id| id.to_string())
            ))
            .map_err(crate::domain::Rejection::from)?;
            let how = How {
                key: Some(Keyed::system(key)),
                correlation: how.correlation,
                causation: cause.map(CausationId::from),
            };
            self.execute::<Access>(
                &system,
                Target::Existing(()),
                &AccessCommand::Revoke {
                    token: grant.token.clone(),
                    reason: format!("the role {role} at {unit} was revoked"),
                },
                &how,
                None,
            )?;
        }
        Ok(done.outcome(&command))
    }
}
