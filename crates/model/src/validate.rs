//! Limits on every input, and checks that name the offending field, so the API and the config
//! loader can hand their errors to users unchanged.

/// Highest priority accepted; a waiting interaction's score folds priority and age into one number.
pub const MAX_PRIORITY: i32 = 1000;
pub const MAX_LEVEL: u32 = 10;
/// Genesys allows up to 25 per media type; more than that is a configuration mistake.
pub const MAX_CAPACITY: u32 = 25;
pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_SUBJECT_LEN: usize = 1_000;
pub const MAX_ADDRESS_LEN: usize = 320;
pub const MAX_BODY_LEN: usize = 64 * 1024;
pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_LEN: usize = 1_024;
pub const MAX_SKILLS: usize = 100;
pub const MAX_ESCALATION_STEPS: usize = 20;
pub const MAX_TIMEOUT_SECS: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

pub fn validate_id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if v.len() > MAX_ID_LEN {
        return Err(ValidationError::new(field, format!("must be at most {MAX_ID_LEN} bytes, got {}", v.len())));
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@')) {
        return Err(ValidationError::new(field, format!("{v:?} may only contain letters, digits, '-', '_', '.', '@'")));
    }
    Ok(())
}

pub fn validate_skill_name(field: &str, v: &str) -> Result<(), ValidationError> {
    validate_id(field, v)
}

pub fn validate_level(field: &str, level: u32) -> Result<(), ValidationError> {
    if !(1..=MAX_LEVEL).contains(&level) {
        return Err(ValidationError::new(field, format!("level must be 1..={MAX_LEVEL}, got {level}")));
    }
    Ok(())
}

pub fn validate_priority(field: &str, p: i32) -> Result<(), ValidationError> {
    if !(0..=MAX_PRIORITY).contains(&p) {
        return Err(ValidationError::new(field, format!("must be 0..={MAX_PRIORITY}, got {p}")));
    }
    Ok(())
}

pub fn validate_secs(field: &str, v: u32, min: u32) -> Result<(), ValidationError> {
    if v < min || v > MAX_TIMEOUT_SECS {
        return Err(ValidationError::new(field, format!("must be {min}..={MAX_TIMEOUT_SECS} seconds, got {v}")));
    }
    Ok(())
}

/// A one-line text shown to people and written into headers (addresses, subjects, names): no
/// control characters, so nothing can inject a header line or hide text (NUL, CR, LF, ESC...).
pub fn validate_line(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    validate_len(field, v, max)?;
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            format!("must not contain control characters (found U+{:04X})", c as u32),
        ));
    }
    Ok(())
}

/// A message body: any text, but no NUL and no control characters other than tab and line breaks.
pub fn validate_text(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    validate_len(field, v, max)?;
    if let Some(c) = v.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(ValidationError::new(
            field,
            format!("must not contain control characters (found U+{:04X})", c as u32),
        ));
    }
    Ok(())
}

pub fn validate_len(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::new(field, format!("must be at most {max} bytes, got {}", v.len())));
    }
    Ok(())
}
