//! Which unit an Open311 request is filed at (decision 0007): routing is data, read from
//! `open311-routing.toml` in the data directory, in the org chart's terms.
//!
//! ```toml
//! # A request whose point lies in the box goes to the grid that covers it.
//! [[area]]
//! unit = "grid-1"
//! south = 29.300
//! west = 120.070
//! north = 29.310
//! east = 120.080
//!
//! # By the client's address id (a prefix), or by words of the address.
//! [[address]]
//! unit = "grid-2"
//! id_prefixes = ["tonghui-g2-"]
//! keywords = ["新马路"]
//!
//! # A service's default unit.
//! [[service]]
//! code = "consumer-dispute"
//! unit = "tonghui"
//! ```
//!
//! The first rule that matches wins, in this order: areas (in file order), addresses (id
//! prefixes, then keywords), the service's default; with none, the request is filed at the
//! API key's own unit. Routing only chooses the unit: the case is opened as the key's actor,
//! and the engine checks, as for every opening, that the key's role may open there, so a
//! routing table can never widen what a key may do.

use std::path::Path;

use serde::Deserialize;

use civicflow_core::domain::case::Place;
use civicflow_core::domain::org::OrgChart;
use civicflow_core::UnitId;

/// The file's name in the data directory.
pub const ROUTING_FILE: &str = "open311-routing.toml";

/// The routing rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    areas: Vec<Area>,
    addresses: Vec<AddressRule>,
    services: Vec<(String, UnitId)>,
}

#[derive(Debug, Clone, PartialEq)]
struct Area {
    unit: UnitId,
    south: f64,
    west: f64,
    north: f64,
    east: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct AddressRule {
    unit: UnitId,
    id_prefixes: Vec<String>,
    keywords: Vec<String>,
}

/// A routing file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ROUTING_FILE}: {0}")]
pub struct RoutingError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    area: Vec<AreaRow>,
    #[serde(default)]
    address: Vec<AddressRow>,
    #[serde(default)]
    service: Vec<ServiceRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AreaRow {
    unit: String,
    south: f64,
    west: f64,
    north: f64,
    east: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressRow {
    unit: String,
    #[serde(default)]
    id_prefixes: Vec<String>,
    #[serde(default)]
    keywords: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRow {
    code: String,
    unit: String,
}

impl Routing {
    /// Reads the rules, checking each (units are valid ids, boxes are boxes on the globe,
    /// address rules say something, a service has one default).
    ///
    /// # Errors
    /// [`RoutingError`] naming the rule and the value at fault.
    pub fn from_toml(text: &str) -> Result<Self, RoutingError> {
        let file: File = toml::from_str(text).map_err(|e| RoutingError(e.to_string()))?;
        let unit = |rule: String, id: &str| {
            UnitId::new(id).map_err(|e| RoutingError(format!("{rule}: unit {id:?}: {e}")))
        };
        let mut routing = Routing::default();
        for (i, row) in file.area.into_iter().enumerate() {
            let rule = format!("area {}", i + 1);
            let in_range = |v: f64, max: f64| v.is_finite() && (-max..=max).contains(&v);
            if !(in_range(row.south, 90.0)
                && in_range(row.north, 90.0)
                && in_range(row.west, 180.0)
                && in_range(row.east, 180.0))
            {
                return Err(RoutingError(format!(
                    "{rule}: latitudes must be within -90..90 and longitudes within -180..180"
                )));
            }
            if row.south > row.north || row.west > row.east {
                return Err(RoutingError(format!(
                    "{rule}: south must not be above north, nor west east of east"
                )));
            }
            routing.areas.push(Area {
                unit: unit(rule, &row.unit)?,
                south: row.south,
                west: row.west,
                north: row.north,
                east: row.east,
            });
        }
        for (i, row) in file.address.into_iter().enumerate() {
            let rule = format!("address {}", i + 1);
            let clean = |values: Vec<String>| -> Vec<String> {
                values
                    .into_iter()
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .collect()
            };
            let (id_prefixes, keywords) = (clean(row.id_prefixes), clean(row.keywords));
            if id_prefixes.is_empty() && keywords.is_empty() {
                return Err(RoutingError(format!(
                    "{rule}: give id_prefixes or keywords (it matches nothing)"
                )));
            }
            routing.addresses.push(AddressRule {
                unit: unit(rule, &row.unit)?,
                id_prefixes,
                keywords,
            });
        }
        for (i, row) in file.service.into_iter().enumerate() {
            let rule = format!("service {}", i + 1);
            if routing.services.iter().any(|(code, _)| *code == row.code) {
                return Err(RoutingError(format!(
                    "{rule}: service {:?} has a default unit already",
                    row.code
                )));
            }
            routing.services.push((row.code, unit(rule, &row.unit)?));
        }
        Ok(routing)
    }

    /// The rules of `DIR/open311-routing.toml`; none (every request filed at its key's unit)
    /// when there is no such file.
    ///
    /// # Errors
    /// [`RoutingError`] when the file cannot be read or its rules are not valid.
    pub fn load(data_dir: &Path) -> Result<Self, RoutingError> {
        let path = data_dir.join(ROUTING_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(RoutingError(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Checks that every unit the rules name is in `org`: a rule naming a unit that does not
    /// exist would file requests nowhere.
    ///
    /// # Errors
    /// [`RoutingError`] naming the first unknown unit.
    pub fn check_units(&self, org: &OrgChart) -> Result<(), RoutingError> {
        match self.units().find(|unit| org.unit(unit).is_none()) {
            Some(unit) => Err(RoutingError(format!(
                "the unit {unit} is not in the org chart (create it first, or fix the rule)"
            ))),
            None => Ok(()),
        }
    }

    /// Every unit the rules name (to check against the org chart when the service starts).
    pub fn units(&self) -> impl Iterator<Item = &UnitId> {
        self.areas
            .iter()
            .map(|a| &a.unit)
            .chain(self.addresses.iter().map(|a| &a.unit))
            .chain(self.services.iter().map(|(_, unit)| unit))
    }

    /// The unit the rules choose for a request of `service_code` at `place`, if any.
    pub fn route(&self, service_code: &str, place: &Place) -> Option<&UnitId> {
        if let (Some(lat), Some(long)) = (place.lat, place.long) {
            if let Some(area) = self
                .areas
                .iter()
                .find(|a| (a.south..=a.north).contains(&lat) && (a.west..=a.east).contains(&long))
            {
                return Some(&area.unit);
            }
        }
        if let Some(id) = &place.address_id {
            if let Some(rule) = self
                .addresses
                .iter()
                .find(|r| r.id_prefixes.iter().any(|p| id.starts_with(p.as_str())))
            {
                return Some(&rule.unit);
            }
        }
        if let Some(address) = &place.address {
            if let Some(rule) = self
                .addresses
                .iter()
                .find(|r| r.keywords.iter().any(|k| address.contains(k.as_str())))
            {
                return Some(&rule.unit);
            }
        }
        self.services
            .iter()
            .find(|(code, _)| code == service_code)
            .map(|(_, unit)| unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
        [[area]]
        unit = "grid-1"
        south = 29.300
        west = 120.070
        north = 29.310
        east = 120.080

        [[area]]
        unit = "grid-3"
        south = 29.290
        west = 120.060
        north = 29.320
        east = 120.090

        [[address]]
        unit = "grid-2"
        id_prefixes = ["tonghui-g2-"]
        keywords = ["新马路"]

        [[service]]
        code = "consumer-dispute"
        unit = "tonghui"
    "#;

    fn place(
        lat: Option<f64>,
        long: Option<f64>,
        address: Option<&str>,
        id: Option<&str>,
    ) -> Place {
        Place {
            lat,
            long,
            address: address.map(str::to_owned),
            address_id: id.map(str::to_owned),
            media_url: None,
        }
    }

    fn routed<'a>(routing: &'a Routing, code: &str, place: &Place) -> Option<&'a str> {
        routing.route(code, place).map(UnitId::as_str)
    }

    #[test]
    fn the_first_matching_rule_wins_in_the_documented_order() {
        let routing = Routing::from_toml(RULES).expect("valid rules");
        let sr = "service-request";
        // Areas in file order: the inner box comes first.
        assert_eq!(
            routed(
                &routing,
                sr,
                &place(Some(29.305), Some(120.075), None, None)
            ),
            Some("grid-1")
        );
        assert_eq!(
            routed(
                &routing,
                sr,
                &place(Some(29.295), Some(120.065), None, None)
            ),
            Some("grid-3")
        );
        // A point wins over the address; outside every box the address decides.
        assert_eq!(
            routed(
                &routing,
                sr,
                &place(Some(29.305), Some(120.075), Some("新马路 5 号"), None)
            ),
            Some("grid-1")
        );
        assert_eq!(
            routed(
                &routing,
                sr,
                &place(Some(10.0), Some(10.0), Some("新马路 5 号"), None)
            ),
            Some("grid-2")
        );
        assert_eq!(
            routed(
                &routing,
                sr,
                &place(None, None, None, Some("tonghui-g2-0017"))
            ),
            Some("grid-2")
        );
        // Then the service's default; then nothing (the key's unit).
        assert_eq!(
            routed(
                &routing,
                "consumer-dispute",
                &place(None, None, Some("elsewhere"), None)
            ),
            Some("tonghui")
        );
        assert_eq!(
            routed(&routing, sr, &place(None, None, Some("elsewhere"), None)),
            None
        );
        assert_eq!(
            routing.units().map(UnitId::as_str).collect::<Vec<_>>(),
            ["grid-1", "grid-3", "grid-2", "tonghui"]
        );
        assert_eq!(Routing::from_toml("").expect("empty"), Routing::default());
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        for (text, says) in [
            (
                "[[area]]\nunit = \"g\"\nsouth = 95.0\nwest = 0.0\nnorth = 96.0\neast = 1.0",
                "area 1",
            ),
            (
                "[[area]]\nunit = \"g\"\nsouth = 2.0\nwest = 0.0\nnorth = 1.0\neast = 1.0",
                "area 1",
            ),
            (
                "[[area]]\nunit = \"\"\nsouth = 0.0\nwest = 0.0\nnorth = 1.0\neast = 1.0",
                "area 1",
            ),
            (
                "[[address]]\nunit = \"g\"\nkeywords = [\"  \"]",
                "address 1",
            ),
            (
                "[[service]]\ncode = \"a\"\nunit = \"g\"\n[[service]]\ncode = \"a\"\nunit = \"h\"",
                "service 2",
            ),
            ("[[area]]\nunit = \"g\"\nsouth = 0.0", "missing field"),
            ("[[shop]]\nunit = \"g\"", "unknown field"),
        ] {
            let error = Routing::from_toml(text).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
