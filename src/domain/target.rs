//! Erasure targets: the systems told to erase, and how their answers count.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where the erasure stands at one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Not yet told, or being retried.
    Pending,
    /// The target took the job (202) and will confirm later.
    Accepted,
    /// The target erased the data.
    Confirmed,
    /// The target refused or could not be reached after every retry.
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Pending => "pending",
            CallStatus::Accepted => "accepted",
            CallStatus::Confirmed => "confirmed",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Confirmed, Self::Failed]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an HTTP answer from a target means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx (not 202): erased there.
    Erased,
    /// 202: accepted, a confirmation will follow.
    Accepted,
    /// 5xx, 408, 429: try again.
    Retry,
    /// Any other 4xx (and unexpected codes): the target refuses; support must act.
    Refused,
}

pub fn classify(status: u16) -> Answer {
    match status {
        202 => Answer::Accepted,
        200..=299 => Answer::Erased,
        408 | 429 | 500..=599 => Answer::Retry,
        _ => Answer::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(classify(200), Answer::Erased);
        assert_eq!(classify(204), Answer::Erased);
        assert_eq!(classify(202), Answer::Accepted);
        for r in [408, 429, 500, 502, 503] {
            assert_eq!(classify(r), Answer::Retry, "{r}");
        }
        for r in [400, 401, 403, 404, 410, 422, 301, 100] {
            assert_eq!(classify(r), Answer::Refused, "{r}");
        }
        for c in [
            CallStatus::Pending,
            CallStatus::Accepted,
            CallStatus::Confirmed,
            CallStatus::Failed,
        ] {
            assert_eq!(CallStatus::parse(c.as_str()), Some(c));
        }
    }
}
