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

/// How much longer sign-in stays refused, and whether the address (rather than the account)
/// is what is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedOut {
    pub retry_after: Duration,
    pub by_address: bool,
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

    /// The lock-out window, which is also how long failures are counted.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Reserves one sign-in attempt, counted as a failure of the account and of the address
    /// until [`LoginLimiter::succeeded`] gives it back. Checking and counting happen under
    /// one lock, before the password is verified, so concurrent attempts cannot get past the
    /// limit together. Refused when the account or the address is locked out.
    pub fn reserve(&self, username: &str, address: &str) -> Result<(), LockedOut> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (account, source) = (account_key(username), address_key(address));
        let locked = |key: &str, limit: u32| {
            failures
                .get(key)
                .filter(|entry| entry.count >= limit && now.duration_since(entry.first) < self.window)
                .map(|entry| self.window.saturating_sub(now.duration_since(entry.first)))
        };
        let by_address = locked(&source, self.max_failures.saturating_mul(ADDRESS_FACTOR));
        let by_account = locked(&account, self.max_failures);
        if by_address.is_some() || by_account.is_some() {
            let retry_after = by_account.into_iter().chain(by_address).max().unwrap_or(self.window);
            return Err(LockedOut { retry_after, by_address: by_address.is_some() });
        }
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, entry| now.duration_since(entry.first) < self.window);
            if failures.len() >= MAX_ENTRIES {
                failures.clear();
            }
        }
        for key in [account, source] {
            let entry = failures.entry(key).or_insert(Failures { first: now, count: 0 });
            if now.duration_since(entry.first) >= self.window {
                *entry = Failures { first: now, count: 0 };
            }
            entry.count += 1;
        }
        Ok(())
    }

    /// A successful sign-in clears the account's failures and gives the address back the
    /// attempt it reserved.
    pub fn succeeded(&self, username: &str, address: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(&account_key(username));
        if let Some(entry) = failures.get_mut(&address_key(address)) {
            entry.count = entry.count.saturating_sub(1);
        }
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
            assert!(limiter.reserve("alice", "10.0.0.1").is_ok());
        }
        let locked = limiter.reserve("Alice", "10.0.0.2").unwrap_err();
        assert!(locked.retry_after <= Duration::from_millis(200));
        assert!(!locked.by_address);
        assert!(limiter.reserve("bob", "10.0.0.1").is_ok(), "the address has not reached its own limit");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.reserve("alice", "10.0.0.1").is_ok());
    }

    #[test]
    fn an_address_is_locked_after_four_times_the_limit_across_accounts() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        for index in 0..8 {
            assert!(limiter.reserve(&format!("user{index}"), "10.0.0.9").is_ok());
        }
        assert!(limiter.reserve("someone-else", "10.0.0.9").unwrap_err().by_address);
        assert!(limiter.reserve("someone-else", "10.0.0.8").is_ok());
    }

    #[test]
    fn success_clears_the_account_and_returns_the_addresss_attempt() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        limiter.reserve("carol", "a").unwrap();
        limiter.succeeded("carol", "a");
        limiter.reserve("carol", "a").unwrap();
        assert!(limiter.reserve("carol", "b").is_ok());
        for index in 0..20 {
            limiter.reserve(&format!("user{index}"), "c").unwrap();
            limiter.succeeded(&format!("user{index}"), "c");
        }
        assert!(limiter.reserve("dave", "c").is_ok(), "successes do not lock an address");
    }

    #[test]
    fn concurrent_attempts_get_no_further_than_the_limit() {
        let limiter = std::sync::Arc::new(LoginLimiter::new(5, Duration::from_secs(60)));
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || limiter.reserve("admin", "10.0.0.1").is_ok())
            })
            .collect();
        let passed = threads.into_iter().map(|thread| thread.join().unwrap()).filter(|passed| *passed).count();
        assert_eq!(passed, 5);
    }
}
