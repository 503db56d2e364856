//! Parse failures: syntax errors, and refusals that learn their JSON path while unwinding.

use super::CanonicalError;

/// One step of a JSON path, recorded while an error unwinds.
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// The non-syntax failures, which are reported with a path.
pub(super) enum Refusal {
    UnsafeInteger(String),
    UnsafeIntegerValue { literal: String, javascript: String },
    NumberOutOfRange(String),
    LoneSurrogate { offset: usize, in_member_name: bool },
    TooDeep,
}

/// An error on its way up; `reversed_path` grows by one segment per level it leaves.
pub(super) enum Failure {
    Syntax {
        offset: usize,
        message: String,
    },
    Refused {
        refusal: Refusal,
        reversed_path: Vec<Segment>,
    },
}

impl Failure {
    pub(super) fn syntax(offset: usize, message: impl Into<String>) -> Self {
        Self::Syntax {
            offset,
            message: message.into(),
        }
    }

    pub(super) fn refused(refusal: Refusal) -> Self {
        Self::Refused {
            refusal,
            reversed_path: Vec::new(),
        }
    }

    pub(super) fn under(mut self, segment: impl FnOnce() -> Segment) -> Self {
        if let Self::Refused { reversed_path, .. } = &mut self {
            reversed_path.push(segment());
        }
        self
    }

    pub(super) fn into_error(self) -> CanonicalError {
        let (refusal, reversed_path) = match self {
            Self::Syntax { offset, message } => {
                return CanonicalError::Syntax { offset, message };
            }
            Self::Refused {
                refusal,
                reversed_path,
            } => (refusal, reversed_path),
        };
        let path = render_path(reversed_path);
        match refusal {
            Refusal::UnsafeInteger(literal) => CanonicalError::UnsafeInteger { path, literal },
            Refusal::UnsafeIntegerValue {
                literal,
                javascript,
            } => CanonicalError::UnsafeIntegerValue {
                path,
                literal,
                javascript,
            },
            Refusal::NumberOutOfRange(literal) => {
                CanonicalError::NumberOutOfRange { path, literal }
            }
            Refusal::LoneSurrogate {
                offset,
                in_member_name,
            } => CanonicalError::LoneSurrogate {
                path,
                offset,
                in_member_name,
            },
            Refusal::TooDeep => CanonicalError::TooDeep { path },
        }
    }
}

/// Renders `order.items[2]["content-type"]`; the root is the empty string.
fn render_path(reversed: Vec<Segment>) -> String {
    let mut path = String::new();
    for segment in reversed.into_iter().rev() {
        match segment {
            Segment::Index(i) => path.push_str(&format!("[{i}]")),
            Segment::Key(key) if is_identifier(&key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key);
            }
            Segment::Key(key) => {
                path.push('[');
                super::write_js_string(&mut path, &key);
                path.push(']');
            }
        }
    }
    path
}

/// ASCII JavaScript identifiers, which read as `a.key`; everything else reads as `a["key"]`.
fn is_identifier(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}
