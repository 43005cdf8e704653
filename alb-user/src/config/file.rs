//! Reading a config file: the settings it gives and every error in it, each
//! with its line. Syntax errors come from toml's recovering parser (all of
//! them, not just the first); then each key is read on its own, so an
//! unknown key or a value of the wrong type is reported and the other keys
//! are still read and checked.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde::{Deserialize as _, de::IntoDeserializer as _};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{Settings, validate};

/// An error at a line of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// From 1.
    pub line: usize,
    pub message: String,
}

impl FileError {
    /// `PATH:LINE: message`.
    pub fn at(&self, path: &Path) -> String {
        format!("{}:{}: {}", path.display(), self.line, self.message)
    }
}

/// A file as read.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// The keys that could be read.
    pub settings: Settings,
    /// What kept keys from being read: syntax, unknown keys, wrong types.
    pub errors: Vec<FileError>,
    /// The line of each key, and of each item of an array value.
    places: BTreeMap<String, Place>,
    /// Keys that are in the file but could not be read.
    unread: BTreeSet<String>,
}

#[derive(Clone, Debug, Default)]
struct Place {
    line: usize,
    items: Vec<usize>,
}

impl Parsed {
    /// Whether `key` is in the file but could not be read (its error says
    /// why; a problem with its value would be a guess).
    pub fn unread(&self, key: &str) -> bool {
        self.unread.contains(key)
    }

    /// Where in the file a problem with a key is: the line of the array
    /// item it names, else of the key, else the first line (a key that is
    /// missing).
    pub fn locate(&self, problem: &validate::Problem) -> FileError {
        let line = self.places.get(problem.key).map_or(1, |place| {
            problem.item.and_then(|item| place.items.get(item).copied()).unwrap_or(place.line)
        });
        FileError { line, message: problem.message.clone() }
    }
}

/// Reads `text` as far as it can.
pub fn parse(text: &str) -> Parsed {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let (table, syntax) = DeTable::parse_recoverable(text);
    let mut parsed = Parsed::default();
    for error in syntax {
        let line = error.span().map_or(1, |span| line_of(span.start));
        // Recovery reports what follows a mistake on its line too: the
        // first error of a line is the one to fix.
        if !parsed.errors.iter().any(|e| e.line == line) {
            parsed.errors.push(FileError { line, message: first_line(error.message()) });
        }
    }
    let broken: BTreeSet<usize> = parsed.errors.iter().map(|e| e.line).collect();
    for (key, value) in table.get_ref() {
        let name = key.get_ref().to_string();
        let first = line_of(key.span().start);
        let lines = first..=line_of(value.span().end.saturating_sub(1)).max(first);
        if broken.iter().any(|line| lines.contains(line)) {
            // What the parser recovered there is a guess: its syntax error
            // is the one to fix.
            parsed.unread.insert(name);
            continue;
        }
        let items = match value.get_ref() {
            DeValue::Array(items) => items.iter().map(|item| line_of(item.span().start)).collect(),
            _ => Vec::new(),
        };
        parsed.places.insert(name.clone(), Place { line: line_of(key.span().start), items });
        // One key at a time: its own error, and the others still read.
        let mut one = DeTable::new();
        one.insert(key.clone(), value.clone());
        let span = key.span().start..value.span().end;
        match Settings::deserialize(Spanned::new(span, one).into_deserializer()) {
            Ok(setting) => parsed.settings = setting.over(&parsed.settings),
            Err(error) => {
                parsed.unread.insert(name.clone());
                let message = first_line(error.message()).replace("unknown field", "unknown key");
                let message = if message.contains(&format!("`{name}`")) {
                    message
                } else {
                    format!("{name}: {message}")
                };
                parsed.errors.push(FileError { line: line_of(key.span().start), message });
            }
        }
    }
    parsed
}

/// Every error in `text`, by line: what kept keys from being read, then
/// what is wrong with the values of those that were read.
pub fn check(text: &str) -> Vec<FileError> {
    let parsed = parse(text);
    let mut errors = parsed.errors.clone();
    for problem in validate::problems(&parsed.settings) {
        // A key that could not be read is reported once, as such.
        if !parsed.unread.contains(problem.key) {
            errors.push(parsed.locate(&problem));
        }
    }
    errors.sort_by_key(|error| error.line);
    errors
}

/// toml's messages can span lines (a caret under the source): the first
/// says what is wrong.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}
