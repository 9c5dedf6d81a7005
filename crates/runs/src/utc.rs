//! Calendar dates for messages and reports, from seconds since the Unix epoch, without a
//! date-time dependency: run files store Unix seconds, and only people read the dates.

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl UtcTime {
    /// The calendar time `secs` seconds after 1970-01-01 00:00:00 UTC.
    pub fn from_unix(secs: i64) -> Self {
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }

    /// `2026-12-05 15:10 UTC`.
    pub fn to_minutes(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }

    /// `2026-12-05 15:10:02 UTC`.
    pub fn to_seconds(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_civil_calendar() {
        assert_eq!(
            UtcTime::from_unix(0).to_seconds(),
            "1970-01-01 00:00:00 UTC"
        );
        assert_eq!(
            UtcTime::from_unix(951_827_696).to_seconds(),
            "2000-02-29 12:34:56 UTC"
        );
        assert_eq!(
            UtcTime::from_unix(1_796_483_402).to_seconds(),
            "2026-12-05 15:10:02 UTC"
        );
        assert_eq!(
            UtcTime::from_unix(1_709_210_096).to_minutes(),
            "2024-02-29 12:34 UTC"
        );
    }
}
