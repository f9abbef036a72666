//! Durations as the language writes them: `"500ms"`, `"30s"`, `"15m"`, `"2h"`,
//! or a sum such as `"1h30m"`.

use std::time::Duration;

/// The longest duration orch accepts: 100 years of 365 days (`"876000h"`).
/// Longer ones could overflow the clock when added to it; validation
/// reports them (`orch::duration-too-long`).
pub(crate) const MAX: Duration = Duration::from_secs(876_000 * 3600);

/// Parses a duration string; the error says what was expected.
pub fn parse(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!("`{text}` is not a duration: expected a number and a unit (ms, s, m, h), like \"30s\" or \"1h30m\"")
    };
    if text.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(expected)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(expected)?),
            _ => return Err(expected()),
        };
        total = total.checked_add(part).ok_or_else(expected)?;
    }
    Ok(total)
}

/// Formats a duration for people: `1.2s`, `340ms`, `2m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let s = d.as_secs();
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_grow_units() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        assert_eq!(human(Duration::from_secs(86_398)), "23h59m58s");
    }

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn rejects_bad_text() {
        for bad in ["", "10", "s", "10x", "1.5s", "-3s", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
