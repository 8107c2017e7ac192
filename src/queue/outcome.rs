//! What happens to a job after a failure: one pure decision from the job's
//! error, the job's attempts and pauses so far, and its platform's policy.
//! Nothing else decides retries (the write-back carries this out).

use std::time::Duration;

use crate::domain::{JobError, PlatformPolicy, Retry};
use crate::sync::backoff;

/// What the queue does with a job that failed this way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Failed for good.
    Fail,
    /// Back to pending after `delay`. `counts`: the attempt is spent (a
    /// platform pause spends none).
    Retry { delay: Duration, counts: bool },
    /// Not a failure: run later, the attempt given back, the last error
    /// left as it was (the platform's turn is far away).
    Defer { delay: Duration },
}

/// The daemon's settings the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct RetryRules {
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A job that met a platform pause this often fails (a private post
    /// can look like a rate limit, and pauses spend no attempts).
    pub max_pauses: i32,
    /// A deferral that names no delay waits this long.
    pub poll_interval: Duration,
}

/// `attempts`: including the one that just failed.
pub fn decide(
    e: &JobError,
    attempts: i32,
    pauses: i32,
    policy: &PlatformPolicy,
    rules: &RetryRules,
) -> Decision {
    let attempts_left = attempts < policy.max_attempts as i32;
    match e.retry {
        Retry::Never => Decision::Fail,
        Retry::Backoff if !attempts_left => Decision::Fail,
        // Some failures know better than the queue how soon a retry can
        // help (ErrorCode::min_retry_delay): never sooner than that.
        Retry::Backoff => Decision::Retry {
            delay: retry_delay(attempts, rules).max(e.retry_after.unwrap_or_default()),
            counts: true,
        },
        Retry::Cooldown if pauses >= rules.max_pauses => Decision::Fail,
        Retry::Cooldown => Decision::Retry {
            delay: e.retry_after.unwrap_or(policy.cooldown),
            counts: false,
        },
        Retry::Defer => Decision::Defer {
            delay: e.retry_after.unwrap_or(rules.poll_interval),
        },
    }
}

/// Exponential backoff with jitter for the `attempts`-th failure, never
/// over the maximum (backon's jitter is added after its own cap).
pub fn retry_delay(attempts: i32, rules: &RetryRules) -> Duration {
    backoff(rules.retry_base, rules.retry_max)
        .nth(attempts.max(1) as usize - 1)
        .unwrap_or(rules.retry_max)
        .min(rules.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ErrorCode, Platform, PlatformTable};

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn rules() -> RetryRules {
        RetryRules {
            retry_base: S(10),
            retry_max: S(600),
            max_pauses: 6,
            poll_interval: S(5),
        }
    }

    fn tiktok() -> PlatformPolicy {
        PlatformTable::default().get(Platform::TikTok).clone() // 3 attempts, 300 s pause
    }

    fn error(code: ErrorCode) -> JobError {
        JobError::new(code, Some(Platform::TikTok), "detail")
    }

    #[test]
    fn facts_about_the_video_fail_at_once() {
        for code in [
            ErrorCode::Private,
            ErrorCode::InvalidUrl,
            ErrorCode::TooLong,
        ] {
            assert_eq!(
                decide(&error(code), 1, 0, &tiktok(), &rules()),
                Decision::Fail
            );
        }
    }

    #[test]
    fn passing_faults_back_off_until_the_attempts_are_spent() {
        let e = error(ErrorCode::Network);
        let Decision::Retry { delay, counts } = decide(&e, 1, 0, &tiktok(), &rules()) else {
            panic!("a first network error is retried");
        };
        assert!(counts);
        assert!((S(10)..=S(20)).contains(&delay), "{delay:?}");
        let Decision::Retry { delay, .. } = decide(&e, 2, 0, &tiktok(), &rules()) else {
            panic!("so is a second");
        };
        assert!(delay >= S(20), "grows: {delay:?}");
        assert_eq!(decide(&e, 3, 0, &tiktok(), &rules()), Decision::Fail);
    }

    #[test]
    fn a_failure_that_names_its_own_wait_is_not_retried_sooner() {
        let e = error(ErrorCode::Network).with_retry_after(S(1800));
        let Decision::Retry { delay, .. } = decide(&e, 1, 0, &tiktok(), &rules()) else {
            panic!("retried");
        };
        assert_eq!(delay, S(1800));
    }

    #[test]
    fn a_platform_pause_spends_no_attempt_until_too_many_pauses() {
        let e = error(ErrorCode::RateLimited);
        assert_eq!(
            decide(&e, 3, 0, &tiktok(), &rules()),
            Decision::Retry {
                delay: S(300),
                counts: false
            }
        );
        let named = e.clone().with_retry_after(S(42));
        assert_eq!(
            decide(&named, 1, 0, &tiktok(), &rules()),
            Decision::Retry {
                delay: S(42),
                counts: false
            }
        );
        assert_eq!(decide(&e, 1, 6, &tiktok(), &rules()), Decision::Fail);
    }

    #[test]
    fn a_far_turn_defers_the_job() {
        let e = JobError::defer(Platform::TikTok, S(45));
        assert_eq!(
            decide(&e, 1, 0, &tiktok(), &rules()),
            Decision::Defer { delay: S(45) }
        );
    }

    #[test]
    fn the_backoff_is_capped() {
        assert!(retry_delay(30, &rules()) <= S(600));
    }
}
