//! The three lists (三张清单): adding, updating, linking and retiring items.

use civicflow_core::domain::aggregate::{fold, Aggregate};
use civicflow_core::domain::lists::{
    self, ListCommand, ListEvent, ListItemAdded, ListItemLinked, ListItemRetired, ListItemState,
    ListItemUpdated, ListKind,
};
use civicflow_core::domain::{Context, Rejection};
use civicflow_core::ListItemId;

use super::fixture::*;
use super::scenario::{field_invalid, field_missing, invalid, role_not_allowed};
use super::spec::*;

/// One item of a list.
pub struct ListItem;

impl Table for ListItem {
    type State = Option<ListItemState>;
    type Command = ListCommand;
    type Event = ListEvent;

    fn fold(events: &[ListEvent]) -> Option<ListItemState> {
        fold::<lists::ListItem>(events, built_in())
    }

    fn decide(
        state: &Option<ListItemState>,
        command: &ListCommand,
        ctx: &Context<'_>,
    ) -> Result<Vec<ListEvent>, Rejection> {
        lists::ListItem::decide(&item(), state, command, ctx).map(|d| d.events)
    }
}

fn item() -> ListItemId {
    ListItemId::parse("01923a7e-0000-7000-8000-0000000000e1").expect("a UUID")
}

fn add(list: ListKind, title: &str, of: &str) -> ListCommand {
    ListCommand::Add {
        item: item(),
        list,
        title: title.to_owned(),
        description: " 周末可借用 free at weekends ".to_owned(),
        unit: unit(of),
    }
}

fn added(list: ListKind, title: &str, of: &str) -> ListEvent {
    ListEvent::Added(ListItemAdded {
        item: item(),
        list,
        title: title.to_owned(),
        description: "周末可借用 free at weekends".to_owned(),
        unit: unit(of),
        at: at(NOW),
    })
}

/// The meeting room Yiwu Heart offers (added at T0).
fn room() -> Vec<ListEvent> {
    vec![ListEvent::Added(ListItemAdded {
        item: item(),
        list: ListKind::Resources,
        title: "共享会议室 a meeting room".to_owned(),
        description: String::new(),
        unit: unit("yiwu-heart"),
        at: at(T0),
    })]
}

fn retired() -> ListEvent {
    ListEvent::Retired(ListItemRetired {
        reason: "已拆除 removed".into(),
    })
}

const EDITORS: &[&str] = &["community_admin", "grid_worker"];

pub fn table() -> Vec<SpecRow<ListItem>> {
    let new = Spec::<ListItem>::new;
    let existing = || Spec::<ListItem>::new().given(room());
    vec![
        ok(
            new().when(
                grid1(),
                add(
                    ListKind::Resources,
                    " 共享会议室 a meeting room ",
                    "yiwu-heart",
                ),
            ),
            vec![added(
                ListKind::Resources,
                "共享会议室 a meeting room",
                "yiwu-heart",
            )],
        ),
        ok(
            new().when(admin(), add(ListKind::Needs, "骑手休息点", "tonghui")),
            vec![added(ListKind::Needs, "骑手休息点", "tonghui")],
        ),
        no(
            new().when(
                liaison(),
                add(ListKind::Resources, "共享会议室", "yiwu-heart"),
            ),
            role_not_allowed(&liaison(), "edit the lists", EDITORS),
        ),
        no(
            new().when(
                grid2(),
                add(ListKind::Resources, "共享会议室", "yiwu-heart"),
            ),
            Rejection::OutOfScope {
                unit: unit("grid-2"),
                action: "edit the lists".into(),
                scope: "the acting unit or a unit below it".into(),
                target: unit("yiwu-heart"),
            },
        ),
        no(
            new().when(grid1(), add(ListKind::Projects, "  ", "grid-1")),
            field_missing("list", "title"),
        ),
        no(
            new().when(
                grid1(),
                add(ListKind::Projects, &"项".repeat(201), "grid-1"),
            ),
            field_invalid("title", "at most 200 characters"),
        ),
        no(
            new().when(admin(), add(ListKind::Projects, "项目", "grid-9")),
            Rejection::NotFound {
                what: "unit",
                id: "grid-9".into(),
            },
        ),
        no(
            existing().when(
                grid1(),
                add(ListKind::Resources, "共享会议室", "yiwu-heart"),
            ),
            Rejection::AlreadyExists {
                what: "list item",
                id: item().to_string(),
            },
        ),
        no(
            new().when(grid1(), ListCommand::Retire { reason: "?".into() }),
            Rejection::NotFound {
                what: "list item",
                id: item().to_string(),
            },
        ),
        // An item of another community is answered as one that does not exist, whatever
        // the command and whoever asks (an administrator of that community, an auditor).
        no(
            existing().when(other_admin(), ListCommand::Retire { reason: "?".into() }),
            Rejection::NotFound {
                what: "list item",
                id: item().to_string(),
            },
        ),
        no(
            existing().when(
                other_admin(),
                ListCommand::Update {
                    title: Some("会议室".into()),
                    description: None,
                },
            ),
            Rejection::NotFound {
                what: "list item",
                id: item().to_string(),
            },
        ),
        // A part left out keeps what the item has; the same text again changes nothing.
        ok(
            existing().when(
                grid1(),
                ListCommand::Update {
                    title: None,
                    description: Some("可容纳 30 人 seats 30".into()),
                },
            ),
            vec![ListEvent::Updated(ListItemUpdated {
                title: "共享会议室 a meeting room".into(),
                description: "可容纳 30 人 seats 30".into(),
            })],
        ),
        ok(
            existing().when(
                grid1(),
                ListCommand::Update {
                    title: Some(" 共享会议室 a meeting room ".into()),
                    description: None,
                },
            ),
            vec![],
        ),
        ok(
            existing().when(
                grid1(),
                ListCommand::Update {
                    title: None,
                    description: None,
                },
            ),
            vec![],
        ),
        ok(
            existing().when(
                grid1(),
                ListCommand::Update {
                    title: Some(" 共享会议室（二楼） ".into()),
                    description: Some("可容纳 30 人 seats 30".into()),
                },
            ),
            vec![ListEvent::Updated(ListItemUpdated {
                title: "共享会议室（二楼）".into(),
                description: "可容纳 30 人 seats 30".into(),
            })],
        ),
        no(
            existing().when(
                grid2(),
                ListCommand::Update {
                    title: Some("会议室".into()),
                    description: Some(String::new()),
                },
            ),
            Rejection::OutOfScope {
                unit: unit("grid-2"),
                action: "edit the lists".into(),
                scope: "the acting unit or a unit below it".into(),
                target: unit("yiwu-heart"),
            },
        ),
        ok(
            existing().when(admin(), ListCommand::Link { case: case_id() }),
            vec![ListEvent::Linked(ListItemLinked { case: case_id() })],
        ),
        ok(
            existing()
                .given([ListEvent::Linked(ListItemLinked { case: case_id() })])
                .when(admin(), ListCommand::Link { case: case_id() }),
            vec![],
        ),
        ok(
            existing().when(
                admin(),
                ListCommand::Retire {
                    reason: " 已拆除 removed ".into(),
                },
            ),
            vec![retired()],
        ),
        no(
            existing().when(
                admin(),
                ListCommand::Retire {
                    reason: String::new(),
                },
            ),
            field_missing("list", "reason"),
        ),
        // Retiring a retired item changes nothing (its first reason stays); anything else is
        // refused.
        ok(
            existing().given([retired()]).when(
                admin(),
                ListCommand::Retire {
                    reason: "又拆了一次 removed again".into(),
                },
            ),
            vec![],
        ),
        no(
            existing().given([retired()]).when(
                grid2(),
                ListCommand::Retire {
                    reason: "又拆了一次 removed again".into(),
                },
            ),
            Rejection::OutOfScope {
                unit: unit("grid-2"),
                action: "edit the lists".into(),
                scope: "the acting unit or a unit below it".into(),
                target: unit("yiwu-heart"),
            },
        ),
        no(
            existing().given([retired()]).when(
                admin(),
                ListCommand::Update {
                    title: Some("会议室".into()),
                    description: Some(String::new()),
                },
            ),
            invalid("item", &format!("list item {} is retired", item())),
        ),
    ]
}

#[test]
fn list_items() {
    run_specs("list item", &table());
}
