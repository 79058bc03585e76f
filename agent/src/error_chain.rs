//! Errors written with their causes, outermost first and separated by `: `
//! (`cannot read checkpoint /x: Permission denied (os error 13)`). The agent's error types
//! say only what failed and keep the cause as their `source`; where an error is logged or
//! reported, the whole chain is written, so the log line also says why.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `: `.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(formatter, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read checkpoint /data/checkpoint.json")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_the_error() {
        let error = Outer(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"));
        assert_eq!(ErrorChain(&error).to_string(), "cannot read checkpoint /data/checkpoint.json: permission denied");
        let alone = std::io::Error::other("disk on fire");
        assert_eq!(ErrorChain(&alone).to_string(), "disk on fire");
    }
}
