//! The choice of a histogram's bucket width: a round interval giving about 60 buckets over the
//! range, as Grafana and Kibana choose them.

const SECOND: i64 = 1_000_000_000;
const TARGET_BUCKETS: i64 = 60;
/// More buckets than this are refused: a chart cannot show them.
pub const MAX_BUCKETS: i64 = 1000;

const ROUND_INTERVALS: [i64; 21] = [
    SECOND / 1000,
    SECOND / 100,
    SECOND / 10,
    SECOND,
    2 * SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    60 * SECOND,
    2 * 60 * SECOND,
    5 * 60 * SECOND,
    10 * 60 * SECOND,
    15 * 60 * SECOND,
    30 * 60 * SECOND,
    3600 * SECOND,
    2 * 3600 * SECOND,
    3 * 3600 * SECOND,
    6 * 3600 * SECOND,
    12 * 3600 * SECOND,
    86_400 * SECOND,
];

/// The smallest round interval that keeps the range within about 60 buckets; whole days past
/// that.
pub fn choose_interval(range_nanos: i64) -> i64 {
    let wanted = (range_nanos / TARGET_BUCKETS).max(1);
    ROUND_INTERVALS.into_iter().find(|&interval| interval >= wanted).unwrap_or_else(|| {
        let day = 86_400 * SECOND;
        (wanted + day - 1) / day * day
    })
}

/// How many buckets of `interval` cover `[start, end)`: `None` when the range is empty or
/// reversed, the interval not positive, or more than [`MAX_BUCKETS`] would be needed. Never
/// overflows, whatever the times.
pub fn bucket_count(start: i64, end: i64, interval: i64) -> Option<usize> {
    let range = end.checked_sub(start).filter(|range| *range > 0)?;
    if interval <= 0 {
        return None;
    }
    let buckets = range / interval + i64::from(range % interval != 0);
    usize::try_from(buckets).ok().filter(|&buckets| buckets as i64 <= MAX_BUCKETS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_counts_round_up_and_never_overflow() {
        assert_eq!(bucket_count(0, 10, 5), Some(2));
        assert_eq!(bucket_count(0, 11, 5), Some(3));
        assert_eq!(bucket_count(0, i64::MAX, choose_interval(i64::MAX)), Some(60));
        assert_eq!(bucket_count(i64::MIN, i64::MAX, i64::MAX), None);
        assert_eq!(bucket_count(0, i64::MAX, 1), None, "too many buckets");
        assert_eq!(bucket_count(5, 5, 1), None);
        assert_eq!(bucket_count(0, 5, 0), None);
    }

    #[test]
    fn intervals_are_round_and_give_about_sixty_buckets() {
        assert_eq!(choose_interval(3600 * SECOND), 60 * SECOND);
        assert_eq!(choose_interval(15 * 60 * SECOND), 15 * SECOND);
        assert_eq!(choose_interval(86_400 * SECOND), 30 * 60 * SECOND);
        assert_eq!(choose_interval(7 * 86_400 * SECOND), 3 * 3600 * SECOND);
        assert_eq!(choose_interval(365 * 86_400 * SECOND), 7 * 86_400 * SECOND);
        assert_eq!(choose_interval(1), SECOND / 1000);
        for range in [SECOND, 3600 * SECOND, 30 * 86_400 * SECOND] {
            assert!(range / choose_interval(range) <= TARGET_BUCKETS);
        }
    }
}
