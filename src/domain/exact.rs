//! Exact decimal numbers read from their text: a sign, the significant digits and a power
//! of ten. `42`, `42.0`, `4.2e1` and `0042` are one number; `12345678901234567890` and
//! `12345678901234567891` are two, whatever their width. Nothing here goes through a
//! float: a number becomes an `f64` or `f32` only when a column of that type asks for it
//! ([`Exact::to_f64`], [`Exact::to_f32`], correctly rounded from the text, as a cast does).

/// How a number was written: what Athena's casts of a text accept depends on it
/// (`CAST('4.0' AS bigint)` fails, `CAST('1e3' AS decimal)` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `-12`, `0042`.
    Integer,
    /// `-12.50`.
    Plain,
    /// `1e3`, `1.5E-2`.
    Scientific,
}

/// A number's exact value. Canonical (zero has no sign, the digits have no leading nor
/// trailing zeros), so equal numbers are equal values and hash alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Exact {
    negative: bool,
    /// Significant digits (ASCII), empty for zero.
    digits: Box<str>,
    /// The value is `digits × 10^exponent`.
    exponent: i64,
}

/// Reads a number text: `-?digits(.digits)?([eE][+-]?digits)?`, leading zeros allowed.
/// None for anything else (spaces, `+1`, `.5`, `1.`, `NaN`) or an exponent beyond `i64`.
pub fn parse_number(text: &str) -> Option<(Exact, Form)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp_text) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let written_exponent: i64 = match exp_text {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) {
                return None;
            }
            e.parse().ok()?
        }
    };
    let fraction = fraction.unwrap_or_default();
    let form = match (exp_text, fraction.is_empty() && !mantissa.contains('.')) {
        (Some(_), _) => Form::Scientific,
        (None, true) => Form::Integer,
        (None, false) => Form::Plain,
    };
    let all: String = whole.chars().chain(fraction.chars()).collect();
    let exponent = written_exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    Some((Exact::new(negative, &all, exponent)?, form))
}

impl Exact {
    /// The canonical form of `±digits × 10^exponent` (`digits` ASCII digits).
    fn new(negative: bool, digits: &str, exponent: i64) -> Option<Self> {
        let leading = digits.trim_start_matches('0');
        let significant = leading.trim_end_matches('0');
        let trailing = i64::try_from(leading.len() - significant.len()).ok()?;
        if significant.is_empty() {
            return Some(Self::zero());
        }
        Some(Self {
            negative,
            digits: significant.into(),
            exponent: exponent.checked_add(trailing)?,
        })
    }

    fn zero() -> Self {
        Self {
            negative: false,
            digits: "".into(),
            exponent: 0,
        }
    }

    /// The number `unscaled × 10^-scale` (a decimal column's value).
    pub fn from_unscaled(unscaled: i128, scale: i8) -> Self {
        Self::new(
            unscaled < 0,
            &unscaled.unsigned_abs().to_string(),
            -i64::from(scale),
        )
        .unwrap_or_else(Self::zero)
    }

    pub fn from_i64(i: i64) -> Self {
        Self::from_unscaled(i128::from(i), 0)
    }

    pub fn from_u64(u: u64) -> Self {
        Self::from_unscaled(i128::from(u), 0)
    }

    /// Whether the number is a whole number.
    pub fn is_integral(&self) -> bool {
        self.exponent >= 0
    }

    /// The value times `10^scale`, when that is a whole number that fits an `i128` (a
    /// decimal column's unscaled value at `scale`); None otherwise, never rounded.
    pub fn unscaled(&self, scale: i8) -> Option<i128> {
        let shift = self.exponent.checked_add(i64::from(scale))?;
        if self.digits.is_empty() {
            return Some(0);
        }
        if !(0..=38).contains(&shift) {
            return None;
        }
        let mut value: i128 = self.digits.parse().ok()?;
        for _ in 0..shift {
            value = value.checked_mul(10)?;
        }
        Some(if self.negative { -value } else { value })
    }

    pub fn to_i64(&self) -> Option<i64> {
        i64::try_from(self.unscaled(0)?).ok()
    }

    pub fn to_u64(&self) -> Option<u64> {
        u64::try_from(self.unscaled(0)?).ok()
    }

    /// The scientific text of the value (`-1234e-2`), which Rust's float parsing rounds
    /// correctly.
    fn scientific(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_owned();
        }
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}e{}", self.digits, self.exponent)
    }

    /// The `double` nearest the value (as `CAST(.. AS double)`), if finite; zero has no
    /// sign.
    pub fn to_f64(&self) -> Option<f64> {
        let f: f64 = self.scientific().parse().ok()?;
        f.is_finite().then_some(f + 0.0)
    }

    /// The `float` (`real`) nearest the value, rounded once from the text (as
    /// `CAST(.. AS real)`), if finite; zero has no sign.
    pub fn to_f32(&self) -> Option<f32> {
        let f: f32 = self.scientific().parse().ok()?;
        f.is_finite().then_some(f + 0.0)
    }
}

/// Whether a JSON value's text, if it is a number, keeps its exact value once read into
/// a `serde_json::Value` (other values are not this check's concern).
pub fn kept_exactly(json: &str) -> bool {
    let text = json.trim();
    let Some((exact, _)) = parse_number(text) else {
        return true;
    };
    serde_json::from_str::<serde_json::Number>(text)
        .is_ok_and(|kept| parse_number(&kept.to_string()).is_some_and(|(k, _)| k == exact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(text: &str) -> Exact {
        parse_number(text).unwrap().0
    }

    #[test]
    fn one_number_written_many_ways_is_one_value() {
        for text in [
            "42", "42.0", "4.2e1", "0042", "420e-1", "42.000E0", "0.42e+2",
        ] {
            assert_eq!(exact(text), exact("42"), "{text}");
        }
        assert_eq!(exact("-0"), exact("0.000"));
        assert_eq!(exact("-0.0e5"), Exact::from_i64(0));
        assert_ne!(exact("-1"), exact("1"));
    }

    #[test]
    fn integers_beyond_sixty_four_bits_and_long_decimals_stay_apart() {
        assert_ne!(exact("12345678901234567890"), exact("12345678901234567891"));
        assert_ne!(
            exact("0.1000000000000000000000001"),
            exact("0.1000000000000000000000002")
        );
        assert_eq!(
            exact("1234567890123456789012345").unscaled(0),
            Some(1_234_567_890_123_456_789_012_345)
        );
        assert_eq!(
            exact("12345678901234567890").to_u64(),
            Some(12345678901234567890)
        );
        assert_eq!(exact("12345678901234567890").to_i64(), None);
    }

    #[test]
    fn texts_have_their_form_and_anything_else_is_no_number() {
        assert_eq!(parse_number("0042").unwrap().1, Form::Integer);
        assert_eq!(parse_number("-4.0").unwrap().1, Form::Plain);
        assert_eq!(parse_number("1e3").unwrap().1, Form::Scientific);
        for bad in [
            "",
            "-",
            "+1",
            ".5",
            "1.",
            " 1",
            "1 ",
            "NaN",
            "1e",
            "1e+",
            "0x1",
            "1e99999999999999999999",
        ] {
            assert!(parse_number(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_value_is_unscaled_at_a_scale_only_when_exact_there() {
        assert_eq!(exact("12.34").unscaled(2), Some(1234));
        assert_eq!(exact("-0.5").unscaled(3), Some(-500));
        assert_eq!(exact("1.235").unscaled(2), None);
        assert_eq!(exact("1e5").unscaled(0), Some(100_000));
        assert_eq!(exact("1e40").unscaled(0), None);
        assert_eq!(Exact::from_unscaled(-1230, 2), exact("-12.3"));
    }

    #[test]
    fn floats_are_rounded_once_from_the_text() {
        assert_eq!(exact("0.1").to_f32(), Some(0.1f32));
        assert_eq!(exact("0.1").to_f64(), Some(0.1f64));
        assert_ne!(f64::from(exact("0.1").to_f32().unwrap()), 0.1f64);
        assert_eq!(exact("1e400").to_f64(), None);
        assert_eq!(exact("-0.0").to_f64().map(f64::to_bits), Some(0));
    }

    proptest! {
        #[test]
        fn every_integer_is_its_own_exact_value(i in any::<i64>(), zeros in 0usize..5) {
            let padded = format!("{}{}", "0".repeat(zeros), i.unsigned_abs());
            let text = if i < 0 { format!("-{padded}") } else { padded };
            prop_assert_eq!(exact(&text).to_i64(), Some(i));
            prop_assert_eq!(exact(&format!("{i}.000")), Exact::from_i64(i));
            prop_assert_eq!(exact(&format!("{i}e0")), Exact::from_i64(i));
        }

        #[test]
        fn every_finite_double_reads_back_from_its_shortest_text(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let (value, _) = parse_number(&format!("{f:e}")).unwrap();
            prop_assert_eq!(value.to_f64(), Some(f + 0.0));
            let (plain, _) = parse_number(&format!("{f}")).unwrap();
            prop_assert_eq!(plain, value);
        }

        #[test]
        fn any_text_parses_or_is_refused_without_a_panic(text in "[-+0-9.eE]{0,30}") {
            if let Some((value, _)) = parse_number(&text) {
                prop_assert!(value.to_f64().is_some() || value.to_f64().is_none());
            }
        }
    }
}
