//! Aligned text tables for people (`shmbus topics`, `shmbus stats`, `shmbus
//! bench`): a header row, columns separated by two spaces, text left-aligned
//! and numbers right-aligned so that digits line up.

use std::fmt::Write as _;

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: names, policies.
    Left,
    /// Numbers, so that their units line up.
    Right,
}

/// A table being filled row by row, then rendered once.
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| *h).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines ending in `\n`, without trailing spaces.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                // `{:<w$}` pads by chars, like `width` measures.
                let w = widths[i];
                let _ = match self.align[i] {
                    Align::Left => write!(line, "{cell:<w$}"),
                    Align::Right => write!(line, "{cell:>w$}"),
                };
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(&[
            ("TOPIC", Align::Left),
            ("MEMORY", Align::Right),
            ("POLICY", Align::Left),
        ]);
        assert!(t.is_empty());
        t.row(vec!["a".into(), "4.0 MiB".into(), "block".into()]);
        t.row(vec![
            "sensors/imu/0".into(),
            "512 B".into(),
            "drop-oldest".into(),
        ]);
        assert!(!t.is_empty());
        assert_eq!(
            t.render(),
            "TOPIC           MEMORY  POLICY\n\
             a              4.0 MiB  block\n\
             sensors/imu/0    512 B  drop-oldest\n"
        );
    }

    #[test]
    fn header_only_when_empty() {
        let t = Table::new(&[("A", Align::Left), ("B", Align::Right)]);
        assert_eq!(t.render(), "A  B\n");
    }
}
