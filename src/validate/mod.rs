//! Validation: ask the real API whether a token works, before anything is touched.

mod probe;

pub use probe::{classify, ValidateError, Validator, ValidatorConfig, Verdict};
pub use probe::{ANTHROPIC_VERSION, OAUTH_BETA};
