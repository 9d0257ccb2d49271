//! A requester's lifecycle: registered (at the acting unit), erased (by a community
//! administrator at or above that unit, or the system).

use civicflow_core::domain::aggregate::{fold, Aggregate};
use civicflow_core::domain::org::Acting;
use civicflow_core::domain::person::{
    self, PersonErased, PersonEvent, PersonRegistered, PersonState,
};
use civicflow_core::domain::{Context, Rejection};

use super::fixture::*;
use super::scenario::{field_invalid, role_not_allowed};
use super::spec::*;

/// What may happen to the fixture's person.
#[derive(Debug, Clone)]
pub enum PersonCommand {
    Register,
    Erase(&'static str),
}

pub struct Person;

impl Table for Person {
    type State = PersonState;
    type Command = PersonCommand;
    type Event = PersonEvent;

    fn fold(events: &[PersonEvent]) -> PersonState {
        fold::<person::Person>(events, built_in())
    }

    fn decide(
        state: &PersonState,
        command: &PersonCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<PersonEvent>, Rejection> {
        let command = match command {
            PersonCommand::Register => person::PersonCommand::Register,
            PersonCommand::Erase(reason) => person::PersonCommand::Erase {
                reason: (*reason).to_owned(),
            },
        };
        person::Person::decide(&super::fixture::person(), state, &command, ctx).map(|d| d.events)
    }
}

/// Registered by someone acting for `by`, at `local`.
fn registered(by: &str, local: &str) -> PersonEvent {
    PersonEvent::Registered(PersonRegistered {
        person: super::fixture::person(),
        unit: unit(by),
        at: at(local),
    })
}

fn erased(reason: &str) -> PersonEvent {
    PersonEvent::Erased(PersonErased {
        person: super::fixture::person(),
        reason: reason.into(),
        at: at(NOW),
    })
}

const REASON: &str = "个人信息保护法第四十七条 a PIPL erasure request";

pub fn table() -> Vec<SpecRow<Person>> {
    let new = Spec::<Person>::new;
    // Registered by grid 1's worker at the door.
    let known = || Spec::<Person>::new().given([registered("grid-1", T0)]);
    let out_of_scope = |acting: &Acting, registered_at: &str| Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: "erase a person".into(),
        scope: "the unit that registered them or a unit above it".into(),
        target: unit(registered_at),
    };
    vec![
        // The registering unit is the acting one.
        ok(
            new().when(grid1(), PersonCommand::Register),
            vec![registered("grid-1", NOW)],
        ),
        ok(
            new().when(open311(), PersonCommand::Register),
            vec![registered("tonghui", NOW)],
        ),
        ok(
            new().when(requester(), PersonCommand::Register),
            vec![registered("tonghui", NOW)],
        ),
        ok(
            new().when(shop101(), PersonCommand::Register),
            vec![registered("shop-yh-101", NOW)],
        ),
        no(
            new().when(volunteer(), PersonCommand::Register),
            role_not_allowed(
                &volunteer(),
                "register a person",
                &[
                    "community_admin",
                    "grid_worker",
                    "resident",
                    "open311_client",
                    "liaison_officer",
                    "enterprise_liaison",
                    "shop_owner",
                ],
            ),
        ),
        no(
            known().when(grid1(), PersonCommand::Register),
            Rejection::AlreadyExists {
                what: "person",
                id: super::fixture::person().to_string(),
            },
        ),
        // The community above the registering grid erases.
        ok(
            known().when(
                admin(),
                PersonCommand::Erase("  个人信息保护法第四十七条 a PIPL erasure request "),
            ),
            vec![erased(REASON)],
        ),
        // So does the registering unit itself.
        ok(
            Spec::<Person>::new()
                .given([registered("tonghui", T0)])
                .when(admin(), PersonCommand::Erase(REASON)),
            vec![erased(REASON)],
        ),
        ok(
            Spec::<Person>::new()
                .given([registered("grid-b1", T0)])
                .when(other_admin(), PersonCommand::Erase(REASON)),
            vec![erased(REASON)],
        ),
        // The system may always.
        ok(
            known().when(system(), PersonCommand::Erase(REASON)),
            vec![erased(REASON)],
        ),
        ok(
            Spec::<Person>::new()
                .given([registered("grid-b1", T0)])
                .when(system(), PersonCommand::Erase(REASON)),
            vec![erased(REASON)],
        ),
        // Erased once; asking again changes nothing.
        ok(
            known()
                .given([erased(REASON)])
                .when(admin(), PersonCommand::Erase(REASON)),
            vec![],
        ),
        // Another community's administrator may not erase a person our grid registered,
        // nor ours one that another community's grid registered.
        no(
            known().when(other_admin(), PersonCommand::Erase(REASON)),
            out_of_scope(&other_admin(), "grid-1"),
        ),
        no(
            Spec::<Person>::new()
                .given([registered("grid-b1", T0)])
                .when(admin(), PersonCommand::Erase(REASON)),
            out_of_scope(&admin(), "grid-b1"),
        ),
        // Out of scope even when already erased: the scope is checked first.
        no(
            known()
                .given([erased(REASON)])
                .when(other_admin(), PersonCommand::Erase(REASON)),
            out_of_scope(&other_admin(), "grid-1"),
        ),
        no(
            known().when(grid1(), PersonCommand::Erase(REASON)),
            role_not_allowed(&grid1(), "erase a person", &["community_admin"]),
        ),
        no(
            new().when(admin(), PersonCommand::Erase(REASON)),
            Rejection::NotFound {
                what: "person",
                id: super::fixture::person().to_string(),
            },
        ),
        no(
            known().when(admin(), PersonCommand::Erase("   ")),
            field_invalid("reason", "must be 1 to 1000 characters"),
        ),
        // A blank reason is refused also for a person erased already (asking again with a
        // reason changes nothing; asking without one is still a malformed request).
        no(
            known()
                .given([erased(REASON)])
                .when(admin(), PersonCommand::Erase("")),
            field_invalid("reason", "must be 1 to 1000 characters"),
        ),
        no(
            known().when(
                Acting::new(actor("li.grid1"), role("community_admin"), unit("tonghui")),
                PersonCommand::Erase(REASON),
            ),
            Rejection::NotGranted {
                actor: actor("li.grid1"),
                role: role("community_admin"),
                unit: unit("tonghui"),
            },
        ),
    ]
}

#[test]
fn persons() {
    run_specs("person", &table());
}

/// The state says when and why a person was erased: the first erasure's, which a later one
/// (a log folded as it is) does not replace.
#[test]
fn the_first_erasure_is_the_one_in_force() {
    let state = fold::<person::Person>(
        &[
            registered("grid-1", T0),
            erased(REASON),
            PersonEvent::Erased(PersonErased {
                person: super::fixture::person(),
                reason: "again".into(),
                at: at(T0),
            }),
        ],
        built_in(),
    );
    assert!(state.registered && state.erased);
    assert_eq!(state.unit, Some(unit("grid-1")));
    assert_eq!(state.erased_at, Some(at(NOW)));
    assert_eq!(state.erasure_reason.as_deref(), Some(REASON));
    let registered_only = fold::<person::Person>(&[registered("grid-1", T0)], built_in());
    assert_eq!(
        (registered_only.erased, registered_only.erased_at),
        (false, None)
    );
}
