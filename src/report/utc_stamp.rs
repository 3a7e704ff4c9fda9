//! The UTC time stamp that names default run directories (`YYYYmmdd-HHMMSS`), without a
//! calendar crate: days since the epoch to a civil date.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYYmmdd-HHMMSS` in UTC (times before 1970 clamp to the epoch).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of `z` days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn utc_stamps_of_known_instants() {
        assert_eq!(utc_stamp(at(0)), "19700101-000000");
        assert_eq!(utc_stamp(at(951_782_400)), "20000229-000000"); // leap day
        assert_eq!(utc_stamp(at(1_700_000_000)), "20231114-221320");
        assert_eq!(utc_stamp(at(4_107_542_399)), "21000228-235959"); // 2100 is no leap year
        assert_eq!(utc_stamp(at(4_107_542_400)), "21000301-000000");
        assert_eq!(utc_stamp(UNIX_EPOCH - Duration::from_secs(5)), "19700101-000000");
    }
}
