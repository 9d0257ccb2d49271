//! [`PersonId`]: who a requester is, without saying anything about them. Defined with the
//! other ids (`crate::ids`); events carry it, and the vault keeps the person's data under it.

pub use crate::ids::PersonId;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    #[test]
    fn person_ids_parse_display_and_sort_by_time() {
        let early = PersonId::new_v7(Timestamp::from_unix_seconds(1_700_000_000));
        let late = PersonId::new_v7(Timestamp::from_unix_seconds(1_800_000_000));
        assert!(early < late);
        assert_eq!(early.as_uuid().get_version_num(), 7);
        let text = early.to_string();
        assert_eq!(PersonId::parse(&text), Ok(early));
        assert_eq!(text.parse::<PersonId>(), Ok(early));
        assert_eq!(PersonId::from_bytes(*early.as_bytes()), early);
        assert_eq!(early.stream().as_str(), format!("person-{text}"));
        assert_eq!(early.stream().category(), "person");
        let err = PersonId::parse("not-a-uuid").expect_err("not a UUID");
        assert_eq!(err.field, "person id");
    }
}
