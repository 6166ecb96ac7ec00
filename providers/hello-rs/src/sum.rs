//! The arithmetic behind `sum.v1`, kept apart from the wiring in main.rs.

use serde_json::Number;

/// Integer sum when every input is an integer and the total fits in an i64
/// (so `[1, 2, 3]` gives `6`, not `6.0`); otherwise an f64 sum. `None` when
/// the f64 total is not finite, which JSON cannot represent.
pub fn sum(numbers: &[Number]) -> Option<Number> {
    let exact = numbers
        .iter()
        .try_fold(0i64, |acc, n| acc.checked_add(as_integer(n)?));
    match exact {
        Some(total) => Some(total.into()),
        None => Number::from_f64(numbers.iter().filter_map(Number::as_f64).sum()),
    }
}

/// JSON has one number type: `2.0` is as much an integer as `2`.
fn as_integer(n: &Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        let f = n.as_f64()?;
        // 2^63 is exactly representable; anything below it with no fraction fits.
        (f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0).then_some(f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sum_of(v: serde_json::Value) -> String {
        let numbers: Vec<Number> = serde_json::from_value(v).unwrap();
        sum(&numbers)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn integers_stay_integers() {
        assert_eq!(sum_of(json!([1, 2, 3])), "6");
        assert_eq!(sum_of(json!([])), "0");
        assert_eq!(sum_of(json!([-5, 2.0])), "-3");
    }

    #[test]
    fn falls_back_to_floats() {
        assert_eq!(sum_of(json!([1.5, 2])), "3.5");
        assert_eq!(sum_of(json!([i64::MAX, 1])), "9.223372036854776e+18");
        assert_eq!(sum_of(json!([u64::MAX])), "1.8446744073709552e+19");
        assert_eq!(sum_of(json!([1e308, 1e308])), "none");
    }
}
