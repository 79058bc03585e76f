//! Sign-in rate limiting: failures are counted per account and per source address over a
//! window; past the limit, attempts are refused until the window has passed since the first
//! counted failure. Kept in memory: a restart forgets the counts (and the lock-outs), which is
//! the trade Grafana and Argo CD make too.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    first: Instant,
    count: u32,
}

/// How much longer sign-in stays refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    pub retry_after: Duration,
}

/// Addresses may fail this many times more than one account, so that a shared office address
/// is not locked out by a few people's typos.
const ADDRESS_FACTOR: u32 = 4;
/// Entries kept at most; past it, expired ones are swept (and if still full, the oldest go).
const MAX_ENTRIES: usize = 100_000;

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures, window, failures: Mutex::new(HashMap::new()) }
    }

    /// Refuses when the account or the address is locked out.
    pub fn check(&self, username: &str, address: &str) -> Result<(), LockedOut> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = |key: &str, limit: u32| {
            failures
                .get(key)
                .filter(|entry| entry.count >= limit && now.duration_since(entry.first) < self.window)
                .map(|entry| self.window.saturating_sub(now.duration_since(entry.first)))
        };
        let account = locked(&account_key(username), self.max_failures);
        let source = locked(&address_key(address), self.max_failures.saturating_mul(ADDRESS_FACTOR));
        match account.into_iter().chain(source).max() {
            Some(retry_after) => Err(LockedOut { retry_after }),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, address: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, entry| now.duration_since(entry.first) < self.window);
            if failures.len() >= MAX_ENTRIES {
                failures.clear();
            }
        }
        for key in [account_key(username), address_key(address)] {
            let entry = failures.entry(key).or_insert(Failures { first: now, count: 0 });
            if now.duration_since(entry.first) >= self.window {
                *entry = Failures { first: now, count: 0 };
            }
            entry.count += 1;
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(&account_key(username));
    }
}

fn account_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("addr:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_the_limit_and_unlocked_after_the_window() {
        let limiter = LoginLimiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(limiter.check("alice", "10.0.0.1").is_ok());
            limiter.record_failure("alice", "10.0.0.1");
        }
        let locked = limiter.check("Alice", "10.0.0.2").unwrap_err();
        assert!(locked.retry_after <= Duration::from_millis(200));
        assert!(limiter.check("bob", "10.0.0.1").is_ok(), "the address has not reached its own limit");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.check("alice", "10.0.0.1").is_ok());
    }

    #[test]
    fn an_address_is_locked_after_four_times_the_limit_across_accounts() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        for index in 0..8 {
            limiter.record_failure(&format!("user{index}"), "10.0.0.9");
        }
        assert!(limiter.check("someone-else", "10.0.0.9").is_err());
        assert!(limiter.check("someone-else", "10.0.0.8").is_ok());
    }

    #[test]
    fn success_clears_the_account() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        limiter.record_failure("carol", "a");
        limiter.record_success("carol");
        limiter.record_failure("carol", "a");
        assert!(limiter.check("carol", "b").is_ok());
    }
}
