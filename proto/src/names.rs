//! The names people give users and tokens, checked once where they enter.

use std::fmt;

/// The longest user or token name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// A name that breaks its rules, with the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("user name {0:?} must be 1 to 64 letters, digits, '-', '_', '.' and '@'")]
    User(String),
    #[error("token name {0:?} must be 1 to 64 letters, digits, '-', '_' and '.'")]
    Token(String),
}

fn follows(name: &str, punctuation: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.chars().all(|character| character.is_ascii_alphanumeric() || punctuation.contains(character))
}

/// Whether `name` is 1 to 64 of letters, digits, `-`, `_` and `.`: the names of tokens,
/// integrations and their secrets.
pub fn is_plain_name(name: &str) -> bool {
    follows(name, "-_.")
}

/// Characters of a service's name at most.
pub const MAX_SERVICE_NAME_BYTES: usize = 128;

/// Whether `name` is 1 to 128 of letters, digits, `-`, `_` and `.`: the names of the
/// services the configuration lists.
pub fn is_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVICE_NAME_BYTES
        && name.chars().all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
}

/// A user name: 1 to 64 of letters, digits, `-`, `_`, `.` and `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if follows(name, "-_.@") { Ok(Self(name.to_owned())) } else { Err(NameError::User(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token name: 1 to 64 of letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if is_plain_name(name) { Ok(Self(name.to_owned())) } else { Err(NameError::Token(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        assert_eq!(UserName::parse("ada.lovelace@example").unwrap().as_str(), "ada.lovelace@example");
        assert!(UserName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "ünicode", "semi;colon"] {
            assert_eq!(UserName::parse(bad), Err(NameError::User(bad.to_owned())));
        }
        assert!(UserName::parse(&"a".repeat(65)).is_err());
        assert!(TokenName::parse("ci-deploy_1.0").is_ok());
        assert_eq!(TokenName::parse("a@b"), Err(NameError::Token("a@b".to_owned())));
        assert_eq!(
            NameError::User("a b".to_owned()).to_string(),
            "user name \"a b\" must be 1 to 64 letters, digits, '-', '_', '.' and '@'"
        );
    }
}
