//! Docker's time arguments (`--since`, `--until`, `until=` filters) and its event times.

use super::EventsError;

/// RFC 3339 in UTC with nanoseconds, trailing zeros trimmed (Go's `RFC3339Nano`).
pub fn rfc3339_nano(nanos: i64) -> String {
    let t = ::time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH);
    let base = t
        .format(&::time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    let frac = format!("{:09}", t.nanosecond());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{frac}Z")
    }
}

/// A Go duration (`10m`, `1h30m`, `1.5s`, `300ms`), optionally signed, in nanoseconds: the
/// build's parser (`HEALTHCHECK --interval`) with Go's sign.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.trim() != rest {
        return None;
    }
    let v = i64::try_from(berth_build::dockerfile::parse_duration(rest)?).ok()?;
    Some(if neg { -v } else { v })
}

/// Docker's `GetTimestamp`: a duration before `now` (`10m`), a unix time (`1700000000`,
/// `1700000000.5`), or an RFC 3339 date or date-time (with or without zone and fraction:
/// UTC when no zone is given). Returns unix nanoseconds.
pub fn parse_timestamp(value: &str, now_nanos: i64) -> Result<i64, EventsError> {
    let bad = || EventsError::BadTime(value.to_string());
    let v = value.trim();
    if v.is_empty() {
        return Err(bad());
    }
    if let Some(d) = parse_go_duration(v) {
        return Ok(now_nanos - d);
    }
    if v.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !v.contains('-')
    {
        let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let mut nanos: i64 = 0;
        if !frac.is_empty() {
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            nanos = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        }
        return Ok(secs * 1_000_000_000 + nanos);
    }
    use ::time::format_description::well_known::Rfc3339;
    if let Ok(t) = ::time::OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t.unix_timestamp_nanos() as i64);
    }
    // Without a zone: UTC. `2006-01-02T15:04:05[.999999999]`, `2006-01-02T15:04`,
    // `2006-01-02`.
    let with_zone = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') {
        format!("{v}:00Z")
    } else {
        format!("{v}Z")
    };
    ::time::OffsetDateTime::parse(&with_zone, &Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as i64)
        .map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_time_formats() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_timestamp("10m", now).unwrap(), now - 600_000_000_000);
        assert_eq!(
            parse_timestamp("1h30m", now).unwrap(),
            now - 5_400_000_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("1700000000.5", now).unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20+01:00", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14", now).unwrap(),
            1_699_920_000_000_000_000
        );
        assert!(parse_timestamp("yesterday", now).is_err());
        assert!(parse_timestamp("10x", now).is_err());
        assert_eq!(
            rfc3339_nano(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
    }
}
