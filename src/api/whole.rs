//! Whole numbers written with a fraction. JSON does not tell `2` from `2.0`, and neither does the
//! OpenAPI document (JSON Schema's `integer` admits both), so where the native API takes an
//! integer it takes either spelling.

use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// Past this magnitude a float no longer spells one integer exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// The integer a JSON number spells, when it spells one.
fn whole(n: &Number) -> Option<Number> {
    if n.is_i64() || n.is_u64() {
        return Some(n.clone());
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= EXACT).then(|| Number::from(f as i64))
}

/// `Option<i64>` from an integer, a whole float, or null.
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => whole(&n)
            .and_then(|w| w.as_i64())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid value: {n}, expected an integer"))),
    }
}

/// An object whose number members that are whole are written as integers (the members of a
/// key's `subject`); anything else as it is.
pub fn members(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        for member in m.values_mut() {
            if let Value::Number(n) = member {
                if let Some(w) = whole(n) {
                    *n = w;
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_i64")]
        n: Option<i64>,
    }

    fn n(v: Value) -> Result<Option<i64>, String> {
        serde_json::from_value::<T>(v).map(|t| t.n).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers() {
        assert_eq!(n(json!({"n": 5})), Ok(Some(5)));
        assert_eq!(n(json!({"n": 5.0})), Ok(Some(5)));
        assert_eq!(n(json!({"n": -182.0})), Ok(Some(-182)));
        assert_eq!(n(json!({"n": null})), Ok(None));
        assert_eq!(n(json!({})), Ok(None));
        assert!(n(json!({"n": 5.5})).is_err());
        assert!(n(json!({"n": 1e300})).is_err());
        assert!(n(json!({"n": "5"})).is_err());
        assert_eq!(
            members(json!({"lock_id": 3.0, "x": 1.5, "s": "a"})),
            json!({"lock_id": 3, "x": 1.5, "s": "a"})
        );
    }
}
