//! Calendar time in UTC from Unix seconds, for log lines and the status page, without a time
//! zone database or a dependency.

/// A moment in UTC, to the second.
///
/// ```
/// let t = fcgi_server::Utc::from_unix(1_795_773_526);
/// assert_eq!((t.year, t.month, t.day), (2026, 11, 27));
/// assert_eq!((t.hour, t.minute, t.second), (9, 58, 46));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    /// The year (proleptic Gregorian).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

impl Utc {
    /// The calendar time `unix` seconds after 1970-01-01T00:00:00Z (Howard Hinnant's
    /// days-to-civil algorithm).
    pub fn from_unix(unix: u64) -> Utc {
        let days = i64::try_from(unix / 86_400).unwrap_or(0);
        let rest = (unix % 86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc { year, month, day, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60 }
    }

    /// The common log format's time, as nginx's `$time_local` and PHP-FPM write it (always
    /// UTC here): `27/Nov/2026:09:58:46 +0000`.
    ///
    /// ```
    /// assert_eq!(fcgi_server::Utc::from_unix(1_795_773_526).clf(), "27/Nov/2026:09:58:46 +0000");
    /// ```
    pub fn clf(&self) -> String {
        format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            self.day,
            self.month_abbr(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// The month's English abbreviation (`Jan`), as the common log format writes it.
    pub fn month_abbr(&self) -> &'static str {
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        MONTHS[(self.month.clamp(1, 12) - 1) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_a_table() {
        let table = [
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (1_709_251_199, (2024, 2, 29, 23, 59, 59)),
            (4_102_444_800, (2100, 1, 1, 0, 0, 0)),
        ];
        for (unix, (year, month, day, hour, minute, second)) in table {
            assert_eq!(
                Utc::from_unix(unix),
                Utc { year, month, day, hour, minute, second },
                "{unix}"
            );
        }
        assert_eq!(Utc::from_unix(0).month_abbr(), "Jan");
    }
}
