//! How big a reliability suite runs (issue #17): the small scale CI runs by default, the
//! full scale on demand with `FULLUP_RELIABILITY=full`. The one place that reads the
//! variable, so every suite agrees on what it means.

/// The variable that selects the full scale (`full`; any other value, or none, is small).
pub const SCALE_VAR: &str = "FULLUP_RELIABILITY";

/// The scale of a reliability suite's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Seconds of work, run by CI on every build.
    Small,
    /// The figures, run by hand (`FULLUP_RELIABILITY=full`).
    Full,
}

impl Scale {
    /// The scale `FULLUP_RELIABILITY` selects.
    pub fn from_env() -> Self {
        Self::parse(std::env::var(SCALE_VAR).ok().as_deref())
    }

    /// The scale a value of `FULLUP_RELIABILITY` selects (`None` when unset): full
    /// exactly for `full` (case-insensitive, spaces trimmed).
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("full") => Self::Full,
            _ => Self::Small,
        }
    }

    /// `small` at the small scale, `full` at the full one.
    pub fn pick<T>(self, small: T, full: T) -> T {
        match self {
            Self::Small => small,
            Self::Full => full,
        }
    }

    /// `small` or `full`, for the figures a suite prints.
    pub fn as_str(self) -> &'static str {
        self.pick("small", "full")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_only_for_full() {
        for value in ["full", "FULL", " Full "] {
            assert_eq!(Scale::parse(Some(value)), Scale::Full, "{value:?}");
        }
        for value in [None, Some(""), Some("1"), Some("small"), Some("fullest")] {
            assert_eq!(Scale::parse(value), Scale::Small, "{value:?}");
        }
        assert_eq!(Scale::Full.pick(1, 2), 2);
        assert_eq!(Scale::Small.pick(1, 2), 1);
    }
}
