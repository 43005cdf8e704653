//! INI files as systemd (systemd.syntax(7)) and NetworkManager (keyfile,
//! GKeyFile) write them, read with `ini_core` (a streaming parser that
//! says each item's line): sections in order, a section name may repeat
//! (`[Address]` twice), and so may a key; `#` and `;` start comments.

use std::path::{Path, PathBuf};

/// One `key=value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// From 1.
    pub line: usize,
}

/// One `[Name]` and the entries under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    /// The first and last line of the section's text (for copying it).
    pub lines: (usize, usize),
    pub entries: Vec<Entry>,
}

/// A file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub path: PathBuf,
    pub text: String,
    pub sections: Vec<Section>,
}

impl KeyFile {
    /// Reads `text` (from `path`).
    pub fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let mut sections: Vec<Section> = Vec::new();
        let mut parser = ini_core::Parser::new(text).comment_char(b'#').auto_trim(true);
        loop {
            let line = parser.line() as usize + 1;
            let Some(item) = parser.next() else { break };
            match item {
                ini_core::Item::Section(name) => {
                    if let Some(last) = sections.last_mut() {
                        last.lines.1 = line - 1;
                    }
                    sections.push(Section {
                        name: name.to_owned(),
                        line,
                        lines: (line, line),
                        entries: Vec::new(),
                    });
                }
                ini_core::Item::Error(text) => {
                    return Err(format!(
                        "{}:{line}: {text:?} is not a section header",
                        path.display()
                    ));
                }
                // `;` comments (systemd's second comment character).
                ini_core::Item::Property(key, _) if key.starts_with([';', '#']) => {}
                ini_core::Item::Property(key, value) => {
                    let Some(section) = sections.last_mut() else {
                        return Err(format!(
                            "{}:{line}: {key:?} is before any [section]",
                            path.display()
                        ));
                    };
                    let Some(value) = value else {
                        return Err(format!("{}:{line}: {key:?} has no '='", path.display()));
                    };
                    section.entries.push(Entry {
                        key: key.to_owned(),
                        value: value.to_owned(),
                        line,
                    });
                }
                ini_core::Item::Comment(_) | ini_core::Item::Blank | ini_core::Item::SectionEnd => {
                }
            }
        }
        let end = text.lines().count();
        if let Some(last) = sections.last_mut() {
            last.lines.1 = end;
        }
        Ok(Self { path: path.to_owned(), text: text.to_owned(), sections })
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<Self, String> {
        Self::parse(path, &super::read_text(path)?)
    }

    /// Every section named `name`, in order.
    pub fn sections<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Section> + use<'a> {
        let name = name.to_owned();
        self.sections.iter().filter(move |section| section.name == name)
    }

    /// The last value of `key` in sections `section` (a later assignment
    /// wins, as in systemd and GKeyFile).
    pub fn get(&self, section: &str, key: &str) -> Option<&Entry> {
        self.sections(section)
            .flat_map(|s| s.entries.iter())
            .filter(|entry| entry.key == key)
            .last()
    }

    /// The text of `section`, its header included, trailing blank lines
    /// left out.
    pub fn section_text(&self, section: &Section) -> String {
        let lines: Vec<&str> = self.text.lines().collect();
        let (first, last) = section.lines;
        let mut part: Vec<&str> = lines[first - 1..last.min(lines.len())].to_vec();
        while part.last().is_some_and(|line| line.trim().is_empty()) {
            part.pop();
        }
        part.join("\n") + "\n"
    }
}

/// The files of `dir` whose names end in one of `suffixes`, by name
/// (the order systemd and NetworkManager read them in).
pub fn files_in(dir: &Path, suffixes: &[&str]) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
            suffixes.iter().any(|suffix| name.ends_with(suffix))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_repeat_and_lines_are_counted_from_one() {
        let text = "# comment\n[Match]\nName=eth0\n\n[Address]\nAddress=198.18.0.1/24\n; other comment\n[Address]\nAddress=198.18.0.2/24\n";
        let file = KeyFile::parse(Path::new("x.network"), text).expect("parses");
        let names: Vec<_> = file.sections.iter().map(|s| (s.name.as_str(), s.line)).collect();
        assert_eq!(names, [("Match", 2), ("Address", 5), ("Address", 8)]);
        let addresses: Vec<_> = file
            .sections("Address")
            .flat_map(|s| &s.entries)
            .map(|e| (e.value.as_str(), e.line))
            .collect();
        assert_eq!(addresses, [("198.18.0.1/24", 6), ("198.18.0.2/24", 9)]);
        assert_eq!(file.section_text(&file.sections[0]), "[Match]\nName=eth0\n");
    }

    #[test]
    fn a_broken_header_is_refused_with_its_line() {
        let error = KeyFile::parse(Path::new("x.netdev"), "[NetDev]\nName=bond0\n[Bond\n")
            .expect_err("refused");
        assert_eq!(error, "x.netdev:3: \"[Bond\" is not a section header");
    }
}
