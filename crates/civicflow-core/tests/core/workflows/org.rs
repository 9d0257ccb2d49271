//! The org chart's decide: units in the right tiers, no cycles, slugs, known roles, and a
//! community admin who acts only within their own community.

use civicflow_core::domain::aggregate::{Aggregate, Fold};
use civicflow_core::domain::org::{
    self, Acting, ActorKind, ActorRegistered, OrgChart, OrgCommand, OrgEvent, RoleDefined,
    RoleGranted, RoleRevoked, Tier, UnitCreated, UnitMoved, UnitRenamed, UnitRetired,
};
use civicflow_core::domain::{Context, Rejection};

use super::fixture::*;
use super::scenario::{field_invalid, invalid, role_not_allowed};
use super::spec::*;

/// The org chart, on top of the fixture chart.
pub struct Org;

impl Table for Org {
    type State = OrgChart;
    type Command = OrgCommand;
    type Event = OrgEvent;

    fn background() -> Vec<OrgEvent> {
        org_events()
    }

    fn fold(events: &[OrgEvent]) -> OrgChart {
        chart_of(events)
    }

    fn decide(
        chart: &OrgChart,
        command: &OrgCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<OrgEvent>, Rejection> {
        org::Org::decide(&(), chart, command, ctx).map(|d| d.events)
    }
}

fn chart_spec() -> Spec<Org> {
    Spec::new()
}

fn create(id: &str, name: &str, tier: Tier, parent: Option<&str>) -> OrgCommand {
    OrgCommand::CreateUnit {
        id: unit(id),
        name: name.to_owned(),
        tier,
        parent: parent.map(unit),
    }
}

fn created(id: &str, name: &str, tier: Tier, parent: Option<&str>) -> OrgEvent {
    OrgEvent::UnitCreated(UnitCreated {
        unit: unit(id),
        name: name.to_owned(),
        tier,
        parent: parent.map(unit),
    })
}

fn move_to(id: &str, parent: &str) -> OrgCommand {
    OrgCommand::MoveUnit {
        id: unit(id),
        parent: unit(parent),
    }
}

fn grant(who: &str, role_name: &str, at_unit: &str) -> OrgCommand {
    OrgCommand::GrantRole {
        actor: actor(who),
        role: role(role_name),
        unit: unit(at_unit),
    }
}

fn revoke(who: &str, role_name: &str, at_unit: &str) -> OrgCommand {
    OrgCommand::RevokeRole {
        actor: actor(who),
        role: role(role_name),
        unit: unit(at_unit),
    }
}

const WITHIN: &str = "the acting unit or a unit below it";
const ADMINISTRATORS: &[&str] = &["community_admin", "system"];

fn outside(acting: &Acting, action: &str, target: &str) -> Rejection {
    Rejection::OutOfScope {
        unit: acting.unit.clone(),
        action: action.to_owned(),
        scope: WITHIN.to_owned(),
        target: unit(target),
    }
}

fn wrong_parent(reason: &str) -> Rejection {
    invalid("parent", reason)
}

pub fn table() -> Vec<SpecRow<Org>> {
    vec![
        // Creating units.
        ok(
            chart_spec().when(admin(), create("grid-3", "第三网格", Tier::Grid, Some("tonghui"))),
            vec![created("grid-3", "第三网格", Tier::Grid, Some("tonghui"))],
        ),
        ok(
            chart_spec().when(
                admin(),
                create("shop-yh-103", "义乌之心 103", Tier::Shop, Some("yiwu-heart")),
            ),
            vec![created(
                "shop-yh-103",
                "义乌之心 103",
                Tier::Shop,
                Some("yiwu-heart"),
            )],
        ),
        ok(
            chart_spec().when(
                admin(),
                create("red-vanguard-1", "红色先锋队", Tier::VolunteerTeam, Some("tonghui")),
            ),
            vec![created(
                "red-vanguard-1",
                "红色先锋队",
                Tier::VolunteerTeam,
                Some("tonghui"),
            )],
        ),
        ok(
            chart_spec().when(system(), create("jiangbin", "江滨社区", Tier::Community, None)),
            vec![created("jiangbin", "江滨社区", Tier::Community, None)],
        ),
        // A unit outside the chain may stand alone.
        ok(
            chart_spec().when(
                system(),
                create("civil-affairs", "民政局", Tier::Department, None),
            ),
            vec![created("civil-affairs", "民政局", Tier::Department, None)],
        ),
        // Wrong parent tiers.
        no(
            chart_spec().when(admin(), create("grid-1a", "子网格", Tier::Grid, Some("grid-1"))),
            wrong_parent("a grid belongs under a community, but grid-1 is a grid"),
        ),
        no(
            chart_spec().when(admin(), create("shop-x", "无名店", Tier::Shop, Some("grid-1"))),
            wrong_parent("a shop belongs under an enterprise, but grid-1 is a grid"),
        ),
        no(
            chart_spec().when(
                admin(),
                create("xintiandi", "新天地", Tier::Enterprise, Some("tonghui")),
            ),
            wrong_parent("an enterprise belongs under a grid, but tonghui is a community"),
        ),
        no(
            chart_spec().when(
                admin(),
                create("grid-police", "警务室", Tier::Department, Some("grid-1")),
            ),
            wrong_parent("a department belongs under a community, but grid-1 is a grid"),
        ),
        no(
            chart_spec().when(
                admin(),
                create("tonghui-east", "通惠东", Tier::Community, Some("tonghui")),
            ),
            wrong_parent("a community has no parent, tonghui was given"),
        ),
        no(
            chart_spec().when(system(), create("grid-x", "网格", Tier::Grid, None)),
            wrong_parent("a grid needs a parent community"),
        ),
        no(
            chart_spec().when(system(), create("grid-x", "网格", Tier::Grid, Some("nowhere"))),
            Rejection::NotFound {
                what: "unit",
                id: "nowhere".into(),
            },
        ),
        // Duplicates, slugs, names.
        no(
            chart_spec().when(admin(), create("grid-1", "又一个网格", Tier::Grid, Some("tonghui"))),
            Rejection::AlreadyExists {
                what: "unit",
                id: "grid-1".into(),
            },
        ),
        no(
            chart_spec().when(admin(), create("Grid 3", "第三网格", Tier::Grid, Some("tonghui"))),
            invalid(
                "unit",
                "Grid 3 is not a slug: use lowercase letters, digits, - _ . (at most 64)",
            ),
        ),
        no(
            chart_spec().when(admin(), create("grid-3", "", Tier::Grid, Some("tonghui"))),
            field_invalid("name", "must be 1 to 200 characters, not blank"),
        ),
        no(
            chart_spec().when(admin(), create("grid-3", " \u{200B} ", Tier::Grid, Some("tonghui"))),
            field_invalid("name", "must be 1 to 200 characters, not blank"),
        ),
        // Who may create.
        // The store's administrators (those of its first community, tonghui) add
        // communities; another community's administrators do not.
        ok(
            chart_spec().when(admin(), create("jiangbin", "江滨社区", Tier::Community, None)),
            vec![created("jiangbin", "江滨社区", Tier::Community, None)],
        ),
        no(
            chart_spec().when(
                other_admin(),
                create("jiangbin", "江滨社区", Tier::Community, None),
            ),
            role_not_allowed(
                &other_admin(),
                "create a unit without a parent (a new community)",
                &["community_admin"],
            ),
        ),
        no(
            chart_spec().when(
                grid1(),
                create("shop-yh-103", "义乌之心 103", Tier::Shop, Some("yiwu-heart")),
            ),
            role_not_allowed(&grid1(), "create a unit", ADMINISTRATORS),
        ),
        no(
            chart_spec().when(
                other_admin(),
                create("grid-3", "第三网格", Tier::Grid, Some("tonghui")),
            ),
            outside(&other_admin(), "create a unit", "tonghui"),
        ),
        no(
            chart_spec().when(
                Acting::new(actor("li.grid1"), role("community_admin"), unit("tonghui")),
                create("grid-3", "第三网格", Tier::Grid, Some("tonghui")),
            ),
            Rejection::NotGranted {
                actor: actor("li.grid1"),
                role: role("community_admin"),
                unit: unit("tonghui"),
            },
        ),
        // Moving units.
        ok(
            chart_spec().when(admin(), move_to("yiwu-heart", "grid-2")),
            vec![OrgEvent::UnitMoved(UnitMoved {
                unit: unit("yiwu-heart"),
                from: Some(unit("grid-1")),
                to: unit("grid-2"),
            })],
        ),
        ok(
            chart_spec().when(system(), move_to("tax-office", "tonghui")),
            vec![OrgEvent::UnitMoved(UnitMoved {
                unit: unit("tax-office"),
                from: None,
                to: unit("tonghui"),
            })],
        ),
        ok(chart_spec().when(admin(), move_to("yiwu-heart", "grid-1")), vec![]),
        // After a move, the enterprise and its shops are in grid 2's subtree.
        ok(
            chart_spec()
                .given([OrgEvent::UnitMoved(UnitMoved {
                    unit: unit("yiwu-heart"),
                    from: Some(unit("grid-1")),
                    to: unit("grid-2"),
                })])
                .when(admin(), move_to("yiwu-heart", "grid-1")),
            vec![OrgEvent::UnitMoved(UnitMoved {
                unit: unit("yiwu-heart"),
                from: Some(unit("grid-2")),
                to: unit("grid-1"),
            })],
        ),
        // Cycles: under itself, under its own child, a community under its grid. The tiers
        // refuse each of them before a cycle could form.
        no(
            chart_spec().when(admin(), move_to("grid-1", "grid-1")),
            wrong_parent("a grid belongs under a community, but grid-1 is a grid"),
        ),
        no(
            chart_spec().when(admin(), move_to("grid-1", "yiwu-heart")),
            wrong_parent("a grid belongs under a community, but yiwu-heart is an enterprise"),
        ),
        no(
            chart_spec().when(system(), move_to("tonghui", "grid-1")),
            wrong_parent("a community has no parent, grid-1 was given"),
        ),
        no(
            chart_spec().when(admin(), move_to("shop-yh-101", "grid-2")),
            wrong_parent("a shop belongs under an enterprise, but grid-2 is a grid"),
        ),
        no(
            chart_spec().when(admin(), move_to("grid-1", "beimen")),
            outside(&admin(), "move a unit", "beimen"),
        ),
        no(
            chart_spec().when(other_admin(), move_to("grid-1", "beimen")),
            outside(&other_admin(), "move a unit", "grid-1"),
        ),
        no(
            chart_spec().when(grid1(), move_to("yiwu-heart", "grid-2")),
            role_not_allowed(&grid1(), "move a unit", ADMINISTRATORS),
        ),
        no(
            chart_spec().when(admin(), move_to("grid-9", "tonghui")),
            Rejection::NotFound {
                what: "unit",
                id: "grid-9".into(),
            },
        ),
        // Renaming.
        ok(
            chart_spec().when(
                admin(),
                OrgCommand::RenameUnit {
                    id: unit("grid-1"),
                    name: "荷花芯网格".into(),
                },
            ),
            vec![OrgEvent::UnitRenamed(UnitRenamed {
                unit: unit("grid-1"),
                from: "第一网格".into(),
                to: "荷花芯网格".into(),
            })],
        ),
        ok(
            chart_spec().when(
                admin(),
                OrgCommand::RenameUnit {
                    id: unit("grid-1"),
                    name: "第一网格".into(),
                },
            ),
            vec![],
        ),
        no(
            chart_spec().when(
                admin(),
                OrgCommand::RenameUnit {
                    id: unit("grid-1"),
                    name: "第一\n网格".into(),
                },
            ),
            field_invalid(
                "name",
                "contains a line break U+000A at character 3; it must be one line of text without control characters",
            ),
        ),
        no(
            chart_spec().when(
                admin(),
                OrgCommand::RenameUnit {
                    id: unit("grid-1"),
                    name: "第一\u{202E}网格".into(),
                },
            ),
            field_invalid(
                "name",
                "contains the bidirectional control character U+202E at character 3; it must be one line of text without control characters",
            ),
        ),
        no(
            chart_spec().when(
                other_admin(),
                OrgCommand::RenameUnit {
                    id: unit("grid-1"),
                    name: "北门的网格".into(),
                },
            ),
            outside(&other_admin(), "rename a unit", "grid-1"),
        ),
        // Actors.
        ok(
            chart_spec().when(
                admin(),
                OrgCommand::RegisterActor {
                    id: actor("xu.volunteer"),
                    name: "徐志愿".into(),
                    kind: ActorKind::Person,
                },
            ),
            vec![OrgEvent::ActorRegistered(ActorRegistered {
                actor: actor("xu.volunteer"),
                name: "徐志愿".into(),
                kind: ActorKind::Person,
                // Registered by an administrator: their community sees the actor.
                registered_at: Some(admin().unit),
            })],
        ),
        no(
            chart_spec().when(
                admin(),
                OrgCommand::RegisterActor {
                    id: actor("li.grid1"),
                    name: "李网格".into(),
                    kind: ActorKind::Person,
                },
            ),
            Rejection::AlreadyExists {
                what: "actor",
                id: "li.grid1".into(),
            },
        ),
        no(
            chart_spec().when(
                grid1(),
                OrgCommand::RegisterActor {
                    id: actor("xu.volunteer"),
                    name: "徐志愿".into(),
                    kind: ActorKind::Person,
                },
            ),
            role_not_allowed(&grid1(), "register an actor", ADMINISTRATORS),
        ),
        // Roles.
        ok(
            chart_spec().when(admin(), grant("wu.resident", "volunteer", "silver-glow")),
            vec![OrgEvent::RoleGranted(RoleGranted {
                actor: actor("wu.resident"),
                role: role("volunteer"),
                unit: unit("silver-glow"),
            })],
        ),
        ok(
            chart_spec().when(admin(), grant("li.grid1", "grid_worker", "grid-1")),
            vec![],
        ),
        ok(
            chart_spec().when(admin(), revoke("li.grid1", "grid_worker", "grid-1")),
            vec![OrgEvent::RoleRevoked(RoleRevoked {
                actor: actor("li.grid1"),
                role: role("grid_worker"),
                unit: unit("grid-1"),
            })],
        ),
        ok(
            chart_spec().when(admin(), revoke("li.grid1", "grid_worker", "grid-2")),
            vec![],
        ),
        no(
            chart_spec().when(admin(), grant("wu.resident", "wizard", "tonghui")),
            invalid(
                "role",
                "unknown role wizard; known: community_admin, grid_worker, enterprise_liaison, shop_owner, party_member, volunteer, resident, department_officer, legal_aid, liaison_officer, social_organizer, auditor, open311_client, system",
            ),
        ),
        no(
            chart_spec().when(admin(), grant("wu.resident", "system", "tonghui")),
            invalid(
                "role",
                "the system role is the engine's own and cannot be granted",
            ),
        ),
        no(
            chart_spec().when(other_admin(), grant("wu.resident", "volunteer", "grid-1")),
            outside(&other_admin(), "grant a role", "grid-1"),
        ),
        // The store's administrators make a community's first administrators, and nothing
        // else there.
        ok(
            chart_spec().when(admin(), grant("wu.resident", "community_admin", "beimen")),
            vec![OrgEvent::RoleGranted(RoleGranted {
                actor: actor("wu.resident"),
                role: role("community_admin"),
                unit: unit("beimen"),
            })],
        ),
        no(
            chart_spec().when(admin(), grant("wu.resident", "volunteer", "beimen")),
            outside(&admin(), "grant a role", "beimen"),
        ),
        no(
            chart_spec().when(other_admin(), grant("wu.resident", "community_admin", "tonghui")),
            outside(&other_admin(), "grant a role", "tonghui"),
        ),
        no(
            chart_spec().when(other_admin(), revoke("li.grid1", "grid_worker", "grid-1")),
            outside(&other_admin(), "revoke a role", "grid-1"),
        ),
        no(
            chart_spec().when(grid1(), grant("wu.resident", "volunteer", "grid-1")),
            role_not_allowed(&grid1(), "grant a role", ADMINISTRATORS),
        ),
        no(
            chart_spec().when(admin(), grant("nobody", "volunteer", "tonghui")),
            Rejection::NotFound {
                what: "actor",
                id: "nobody".into(),
            },
        ),
        no(
            chart_spec().when(admin(), grant("wu.resident", "volunteer", "grid-9")),
            Rejection::NotFound {
                what: "unit",
                id: "grid-9".into(),
            },
        ),
        // A revoked grant no longer acts.
        no(
            chart_spec()
                .given([OrgEvent::RoleRevoked(RoleRevoked {
                    actor: actor("wang.admin"),
                    role: role("community_admin"),
                    unit: unit("tonghui"),
                })])
                .when(admin(), create("grid-3", "第三网格", Tier::Grid, Some("tonghui"))),
            Rejection::NotGranted {
                actor: actor("wang.admin"),
                role: role("community_admin"),
                unit: unit("tonghui"),
            },
        ),
        // Roles are data: defined once, then granted and named by workflows.
        ok(
            chart_spec().when(admin(), define_role("street_sweeper", "保洁员 street sweeper")),
            vec![sweeper_defined()],
        ),
        ok(
            chart_spec()
                .given([sweeper_defined()])
                .when(admin(), define_role("street_sweeper", "保洁员 street sweeper")),
            vec![],
        ),
        no(
            chart_spec()
                .given([sweeper_defined()])
                .when(admin(), define_role("street_sweeper", "清洁工")),
            Rejection::AlreadyExists {
                what: "role",
                id: "street_sweeper".into(),
            },
        ),
        no(
            chart_spec().when(admin(), define_role("grid_worker", "网格员")),
            Rejection::AlreadyExists {
                what: "role",
                id: "grid_worker".into(),
            },
        ),
        no(
            chart_spec().when(admin(), define_role("Street-Sweeper", "保洁员")),
            invalid(
                "id",
                "Street-Sweeper is not a role id: a lowercase letter, then lowercase letters, digits and _ (at most 64)",
            ),
        ),
        no(
            chart_spec().when(grid1(), define_role("street_sweeper", "保洁员")),
            role_not_allowed(&grid1(), "define a role", &["community_admin"]),
        ),
        no(
            chart_spec().when(admin(), grant("wu.resident", "street_sweeper", "grid-1")),
            invalid(
                "role",
                &format!(
                    "unknown role street_sweeper; known: {}",
                    org::roles::ALL.join(", ")
                ),
            ),
        ),
        ok(
            chart_spec()
                .given([sweeper_defined()])
                .when(admin(), grant("wu.resident", "street_sweeper", "grid-1")),
            vec![OrgEvent::RoleGranted(RoleGranted {
                actor: actor("wu.resident"),
                role: role("street_sweeper"),
                unit: unit("grid-1"),
            })],
        ),
        // Retiring: only a leaf that leads no open case, by an administrator above it.
        ok(
            chart_spec().when(admin(), retire("shop-yh-102", &[])),
            vec![OrgEvent::UnitRetired(UnitRetired {
                unit: unit("shop-yh-102"),
            })],
        ),
        ok(
            chart_spec()
                .given([retired("shop-yh-102")])
                .when(admin(), retire("shop-yh-102", &[])),
            vec![],
        ),
        no(
            chart_spec().when(admin(), retire("shop-yh-102", &[OPEN_CASE])),
            invalid(
                "id",
                &format!("shop-yh-102 still leads 1 open case(s): {OPEN_CASE}; dispatch or close them first"),
            ),
        ),
        no(
            chart_spec().when(admin(), retire("yiwu-heart", &[])),
            invalid(
                "id",
                "yiwu-heart still has units below it that are not retired: shop-yh-101, shop-yh-102; retire or move them first",
            ),
        ),
        no(
            chart_spec().when(admin(), retire("tonghui", &[])),
            invalid(
                "id",
                "tonghui is the unit you act for: an administrator above it retires it",
            ),
        ),
        no(
            chart_spec().when(other_admin(), retire("shop-yh-102", &[])),
            outside(&other_admin(), "retire a unit", "shop-yh-102"),
        ),
        // A retired unit takes no grant and no new unit.
        no(
            chart_spec()
                .given([retired("shop-yh-102")])
                .when(admin(), grant("wu.resident", "shop_owner", "shop-yh-102")),
            invalid("unit_id", "shop-yh-102 is retired: no role is granted there"),
        ),
    ]
}

const OPEN_CASE: &str = "0192f3a0-0000-7000-8000-000000000042";

fn define_role(id: &str, name: &str) -> OrgCommand {
    OrgCommand::DefineRole {
        id: role(id),
        name: name.to_owned(),
    }
}

fn sweeper_defined() -> OrgEvent {
    OrgEvent::RoleDefined(RoleDefined {
        role: role("street_sweeper"),
        name: "保洁员 street sweeper".into(),
    })
}

fn retire(id: &str, open_cases: &[&str]) -> OrgCommand {
    OrgCommand::RetireUnit {
        id: unit(id),
        open_cases: open_cases
            .iter()
            .map(|c| c.parse().expect("a case id"))
            .collect(),
    }
}

fn retired(id: &str) -> OrgEvent {
    OrgEvent::UnitRetired(UnitRetired { unit: unit(id) })
}

#[test]
fn org_chart_decisions() {
    run_specs("org chart", &table());
}

#[test]
fn the_fixture_chart_is_what_decide_would_build() {
    // Every fixture event is one the chart's own decide accepts from the system, in order.
    let mut chart = OrgChart::default();
    for event in org_events() {
        let command = match &event {
            OrgEvent::UnitCreated(e) => OrgCommand::CreateUnit {
                id: e.unit.clone(),
                name: e.name.clone(),
                tier: e.tier,
                parent: e.parent.clone(),
            },
            OrgEvent::ActorRegistered(e) => OrgCommand::RegisterActor {
                id: e.actor.clone(),
                name: e.name.clone(),
                kind: e.kind,
            },
            OrgEvent::RoleGranted(e) => OrgCommand::GrantRole {
                actor: e.actor.clone(),
                role: e.role.clone(),
                unit: e.unit.clone(),
            },
            other => panic!("the fixture has no {other:?}"),
        };
        let ctx = Context {
            acting: &system(),
            org: &chart,
            definitions: built_in(),
            time: calendar(),
            now: at(NOW),
        };
        assert_eq!(
            org::Org::decide(&(), &chart, &command, &ctx).map(|d| d.events),
            Ok(vec![event.clone()]),
            "{command:?}"
        );
        org::Org::apply(
            &mut chart,
            &event,
            &Fold {
                version: civicflow_core::Version::FIRST,
                definitions: built_in(),
            },
        );
    }
    assert_eq!(&chart, super::fixture::chart());
}

#[test]
fn a_community_admin_acts_only_within_their_community() {
    Spec::<Org>::new()
        .when(
            other_admin(),
            grant("zhou.resident", "volunteer", "silver-glow"),
        )
        .then_rejected(outside(&other_admin(), "grant a role", "silver-glow"));
    Spec::<Org>::new()
        .when(
            other_admin(),
            grant("zhou.resident", "volunteer", "grid-b1"),
        )
        .then(vec![OrgEvent::RoleGranted(RoleGranted {
            actor: actor("zhou.resident"),
            role: role("volunteer"),
            unit: unit("grid-b1"),
        })]);
}

/// The reach rules of docs/engine.md over the fixture chart, one row per unit: where each
/// caller may file a case (`OrgChart::may_open_at`, opening scope `any` and `subtree`) and
/// whom it may hand a case to (`OrgChart::may_hand_to`, both reaches).
#[test]
fn who_may_file_where_and_hand_a_case_to_whom() {
    use civicflow_core::domain::org::Reach;
    use civicflow_core::domain::workflow::Scope;
    let chart = chart();
    // (unit, grid 1 files with `any`, grid 1 files with `subtree`, grid 1 hands within its
    // subtree, grid 1 hands outside the chain)
    let rows = [
        ("grid-1", true, true, true, true),
        ("yiwu-heart", true, true, true, true),
        ("shop-yh-101", true, true, true, true),
        ("tonghui", true, false, false, false),
        ("grid-2", false, false, false, false),
        ("intime", false, false, false, false),
        ("shop-it-201", false, false, false, false),
        ("market-regulation", false, false, false, true),
        ("lotus-social", false, false, false, true),
        ("silver-glow", false, false, false, true),
        ("tax-office", false, false, false, true),
        ("beimen", false, false, false, false),
        ("grid-b1", false, false, false, false),
        ("no-such-unit", false, false, false, false),
    ];
    let grid = grid1();
    for (target, any, subtree, hand, outside) in rows {
        let target = unit(target);
        assert_eq!(
            chart.may_open_at(&grid, &target, Scope::Any),
            any,
            "{target}: any"
        );
        assert_eq!(
            chart.may_open_at(&grid, &target, Scope::Subtree),
            subtree,
            "{target}: subtree"
        );
        assert_eq!(
            chart.may_hand_to(&grid, &target, Reach::Subtree),
            hand,
            "{target}: hand"
        );
        assert_eq!(
            chart.may_hand_to(&grid, &target, Reach::OutsideChain),
            outside,
            "{target}: outside"
        );
    }
    // Persons file anywhere that exists, with either scope; the system too, and it hands
    // over anywhere.
    for acting in [requester(), open311(), system()] {
        for target in ["grid-2", "shop-it-201", "tax-office", "grid-b1"] {
            for scope in [Scope::Any, Scope::Subtree] {
                assert!(
                    chart.may_open_at(&acting, &unit(target), scope),
                    "{acting:?} {target}"
                );
            }
        }
        assert!(!chart.may_open_at(&acting, &unit("no-such-unit"), Scope::Any));
    }
    assert!(chart.may_hand_to(&system(), &unit("grid-b1"), Reach::Subtree));
    // A unit outside the chain hands to departments of its own community, not another's
    // chain units.
    assert!(chart.may_hand_to(&officer(), &unit("legal-aid"), Reach::OutsideChain));
    assert!(!chart.may_hand_to(&officer(), &unit("legal-aid"), Reach::Subtree));
    assert!(!chart.may_hand_to(&officer(), &unit("grid-1"), Reach::OutsideChain));
}
