//! The one error type of the core crate.

use std::fmt;

/// What went wrong, and with which argument.
///
/// `argument` is the name of the offending parameter as the Python API spells it, so the
/// binding can raise an exception that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub argument: &'static str,
    pub message: String,
}

impl Error {
    pub fn new(argument: &'static str, message: impl Into<String>) -> Self {
        Self { argument, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.argument, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Return an [`Error`] for `argument` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $arg:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::error::Error::new($arg, format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;
