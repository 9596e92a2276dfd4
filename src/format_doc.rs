//! Tests only: docs/FORMAT.md read as data, so that each module's tests can compare the
//! document's layout blocks and names with the constants the code uses. One reader for
//! every such test; a wrong offset, size or name in the document fails them.

/// The whole of docs/FORMAT.md.
pub(crate) const DOC: &str = include_str!("../docs/FORMAT.md");

/// The `## title…` section of FORMAT.md (its `###` subsections included), from the
/// heading to the next `## ` heading.
pub(crate) fn section(title: &str) -> &'static str {
    DOC.split("\n## ")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("FORMAT.md has no section {title:?}"))
}

/// The text of the `n`-th (from 0) fenced code block of section `title`.
pub(crate) fn block(title: &str, n: usize) -> &'static str {
    section(title)
        .split("```")
        .skip(1)
        .step_by(2)
        .nth(n)
        .unwrap_or_else(|| panic!("section {title:?} of FORMAT.md has no code block {n}"))
}

/// One line of an `offset  size  field` block: the offset and size as written (a number
/// or an expression such as `81+32k`, `32·k`, `n`) and the field's name. The `(end)`
/// line has the name `(end)` and an empty size and description.
#[derive(Debug)]
pub(crate) struct Row {
    pub offset: String,
    pub size: String,
    pub name: String,
    /// The rest of the line, white space runs made single spaces.
    pub desc: String,
}

/// The rows of an `offset  size  field` block.
pub(crate) struct Layout {
    /// Where the block is, for messages.
    what: String,
    pub rows: Vec<Row>,
}

/// The `n`-th code block of section `title`, read as an `offset  size  field` table.
/// Lines that continue a description (no offset) are skipped.
pub(crate) fn layout(title: &str, n: usize) -> Layout {
    let text = block(title, n);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["offset", "size", "field"],
        "code block {n} of {title:?} is not a layout table"
    );
    let is_offset = |w: &str| {
        w.bytes().any(|b| b.is_ascii_digit())
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
    };
    let rows = lines
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                [off, end] if *end == "(end)" && is_offset(off) => Some(Row {
                    offset: off.to_string(),
                    size: String::new(),
                    name: end.to_string(),
                    desc: String::new(),
                }),
                [off, size, name, desc @ ..] if is_offset(off) => Some(Row {
                    offset: off.to_string(),
                    size: size.to_string(),
                    name: name.to_string(),
                    desc: desc.join(" "),
                }),
                _ => None,
            }
        })
        .collect();
    Layout {
        what: format!("code block {n} of FORMAT.md's {title:?}"),
        rows,
    }
}

impl Layout {
    fn row(&self, name: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not in {}", self.what))
    }

    /// The field names in the order the table gives them, `(end)` included.
    pub fn names(&self) -> Vec<&str> {
        self.rows.iter().map(|r| r.name.as_str()).collect()
    }

    /// The offset of `name`, which the table must give as a number.
    pub fn offset(&self, name: &str) -> usize {
        let r = self.row(name);
        r.offset.parse().unwrap_or_else(|_| {
            panic!(
                "{name}'s offset {:?} in {} is not a number",
                r.offset, self.what
            )
        })
    }

    /// The offset of `name` as written (for an expression such as `81+32k`).
    pub fn offset_text(&self, name: &str) -> &str {
        &self.row(name).offset
    }

    /// The size of `name`, which the table must give as a number.
    pub fn size(&self, name: &str) -> usize {
        let r = self.row(name);
        r.size.parse().unwrap_or_else(|_| {
            panic!(
                "{name}'s size {:?} in {} is not a number",
                r.size, self.what
            )
        })
    }

    /// The size of `name` as written (for an expression such as `32·k`).
    pub fn size_text(&self, name: &str) -> &str {
        &self.row(name).size
    }

    /// The description of `name`: the rest of its line (not its continuation lines).
    pub fn desc(&self, name: &str) -> &str {
        &self.row(name).desc
    }

    /// Asserts that each `(name, offset, size)` is the table's, and that every row with
    /// a numeric offset and size ends where the next row starts.
    pub fn check(&self, fields: &[(&str, usize, usize)]) {
        for &(name, offset, size) in fields {
            assert_eq!(
                self.offset(name),
                offset,
                "offset of {name} in {}",
                self.what
            );
            assert_eq!(self.size(name), size, "size of {name} in {}", self.what);
        }
        for w in self.rows.windows(2) {
            if let (Ok(o), Ok(s), Ok(next)) = (
                w[0].offset.parse::<usize>(),
                w[0].size.parse::<usize>(),
                w[1].offset.parse::<usize>(),
            ) {
                assert_eq!(
                    o + s,
                    next,
                    "{} ends at {} in {}",
                    w[0].name,
                    o + s,
                    self.what
                );
            }
        }
    }
}

#[test]
fn the_reader_finds_rows_and_a_wrong_offset_fails() {
    let l = layout("Configuration", 0);
    assert_eq!(
        l.names(),
        [
            "magic",
            "version",
            "algorithm",
            "ledger",
            "created",
            "crc32",
            "(end)"
        ]
    );
    assert_eq!(l.offset("(end)"), 38);
    assert_eq!(l.size_text("ledger"), "16");
    assert_eq!(l.desc("magic"), "\"CHAINLOG\" (ASCII)");
    let wrong = std::panic::catch_unwind(|| l.check(&[("created", 25, 8)]));
    assert!(wrong.is_err());
    let gap = Layout {
        what: "a test table".into(),
        rows: vec![
            Row {
                offset: "0".into(),
                size: "8".into(),
                name: "a".into(),
                desc: String::new(),
            },
            Row {
                offset: "9".into(),
                size: "4".into(),
                name: "b".into(),
                desc: String::new(),
            },
        ],
    };
    assert!(std::panic::catch_unwind(|| gap.check(&[])).is_err());
}
