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

/// The Open311 routing rules of the Tonghui demo (`DIR/open311-routing.toml`, written by
/// `civicflow serve --demo` when it loads the demo; `docs/open311.md` explains the rules).
///
/// The boxes are a plausible split of 通惠社区 (稠城街道, 义乌) into its three grids, in WGS 84
/// degrees as Open311 clients send them: grid 1 around 新马路 and 义乌之心 in the south-east,
/// grid 2 along 稠州北路 with 银泰 in the north-east, grid 3 by 骆宾王公园 and 新天地 in the
/// west. Addresses name the same landmarks; the demo's civic app numbers its address ids
/// `tonghui-g1-…` to `tonghui-g3-…` by grid. Errands go to the community's one-stop desk when
/// neither the point nor the address places them. The demo's `open311_client` key acts at the
/// community, and every workflow it files opens at any unit (`scope = "any"`), so it may file
/// at each of these units.
pub const DEMO_OPEN311_ROUTING: &str = r#"# Open311 routing for the Tonghui demo (通惠社区, 稠城街道, 义乌): which unit a civic app's
# request is filed at. The first rule that matches wins: areas (in this order), then address
# ids (prefixes) and address words, then the service's default; else the api_key's own unit.

# 通惠第一网格 grid 1: 新马路, 义乌之心 (south-east).
[[area]]
unit = "grid-1"
south = 29.3040
west = 120.0740
north = 29.3100
east = 120.0820

# 通惠第二网格 grid 2: 稠州北路, 银泰百货 (north-east).
[[area]]
unit = "grid-2"
south = 29.3100
west = 120.0740
north = 29.3160
east = 120.0820

# 通惠第三网格 grid 3: 骆宾王公园, 新天地 (west).
[[area]]
unit = "grid-3"
south = 29.3040
west = 120.0660
north = 29.3160
east = 120.0740

[[address]]
unit = "grid-1"
id_prefixes = ["tonghui-g1-"]
keywords = ["新马路", "义乌之心"]

[[address]]
unit = "grid-2"
id_prefixes = ["tonghui-g2-"]
keywords = ["稠州北路", "银泰"]

[[address]]
unit = "grid-3"
id_prefixes = ["tonghui-g3-"]
keywords = ["骆宾王公园", "新天地"]

# Errands (代办) go to the community's one-stop desk.
[[service]]
code = "one-stop-errand"
unit = "tonghui"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open311::routing::Routing;
    use civicflow_core::domain::case::Place;

    #[test]
    fn the_demo_routing_is_valid_and_routes_each_grid() {
        let routing = Routing::from_toml(DEMO_OPEN311_ROUTING).expect("valid rules");
        let at = |lat: f64, long: f64| Place {
            lat: Some(lat),
            long: Some(long),
            ..Place::default()
        };
        let unit = |code: &str, place: &Place| routing.route(code, place).map(|u| u.to_string());
        assert_eq!(
            unit("service-request", &at(29.307, 120.078)).as_deref(),
            Some("grid-1")
        );
        assert_eq!(
            unit("service-request", &at(29.313, 120.078)).as_deref(),
            Some("grid-2")
        );
        assert_eq!(
            unit("service-request", &at(29.310, 120.070)).as_deref(),
            Some("grid-3")
        );
        let address = |text: &str| Place {
            address: Some(text.to_owned()),
            ..Place::default()
        };
        assert_eq!(
            unit("service-request", &address("新天地 2 号门")).as_deref(),
            Some("grid-3")
        );
        assert_eq!(
            unit("one-stop-errand", &address("elsewhere")).as_deref(),
            Some("tonghui")
        );
        assert_eq!(unit("service-request", &address("elsewhere")), None);
    }
}
