//! The one set-up of comfy-table for every text view: a borderless table with its header
//! underlined, two spaces between columns, numbers right-aligned (a column says so when
//! it is made), nothing wrapped (a table wider than the terminal scrolls; its cells are cut
//! by the view, not here), and colour only when [`TextStyle::colour`] asks for it.
//!
//! comfy-table is built without its terminal feature (no crossterm), so it never styles a
//! cell itself; a row's [`Mark`] colours the whole rendered line instead, which keeps the
//! column widths exact whether colour is on or off.

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::lines::paint;
use super::TextStyle;

/// Borderless: only the line under the header (comfy-table's preset string; a space is
/// "not drawn").
const PRESET: &str = "     ─             ";

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Words.
    Left,
    /// Numbers, sizes, durations.
    Right,
}

/// What a row is, for its colour on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// An ordinary row.
    Plain,
    /// Something is wrong (red).
    Alarm,
    /// Worth a look (yellow).
    Warn,
    /// Confirmed good (green).
    Good,
}

/// A table of a text view.
pub(crate) struct TextTable {
    table: Table,
    marks: Vec<Mark>,
}

impl TextTable {
    /// A table with these columns (title, alignment).
    pub(crate) fn new(columns: &[(&str, Align)]) -> TextTable {
        let mut table = Table::new();
        table
            .load_preset(PRESET)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(
                columns
                    .iter()
                    .map(|(title, align)| Cell::new(title).set_alignment(alignment(*align))),
            );
        for (i, (_, align)) in columns.iter().enumerate() {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(alignment(*align));
                column.set_padding((0, if i + 1 < columns.len() { 2 } else { 0 }));
            }
        }
        TextTable {
            table,
            marks: Vec::new(),
        }
    }

    /// Adds a row of cells, in the columns' order.
    pub(crate) fn row<I, S>(&mut self, cells: I, mark: Mark)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.table
            .add_row(cells.into_iter().map(|c| Cell::new(c.into())));
        self.marks.push(mark);
    }

    /// The table, each line indented by two spaces, trailing blanks cut; the header bold
    /// and marked rows coloured when `style` has colour.
    pub(crate) fn render(&self, style: TextStyle) -> String {
        let mut out = String::new();
        for (i, line) in self.table.lines().enumerate() {
            let line = line.trim_end();
            // Line 0 is the header, line 1 its underline, then one line per row.
            let painted = match i {
                0 => paint(style, anstyle::Style::new().bold(), line),
                1 => paint(style, anstyle::Style::new().dimmed(), line),
                _ => match self.marks.get(i - 2).copied().unwrap_or(Mark::Plain) {
                    Mark::Plain => line.to_string(),
                    Mark::Alarm => paint(style, fg(anstyle::AnsiColor::Red), line),
                    Mark::Warn => paint(style, fg(anstyle::AnsiColor::Yellow), line),
                    Mark::Good => paint(style, fg(anstyle::AnsiColor::Green), line),
                },
            };
            out.push_str("  ");
            out.push_str(&painted);
            out.push('\n');
        }
        out
    }
}

/// Rows as aligned columns without a header (a list laid out in columns: every cell left
/// aligned, two spaces between columns), each line indented by two spaces, without trailing blanks.
pub(crate) fn columns(rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn alignment(align: Align) -> CellAlignment {
    match align {
        Align::Left => CellAlignment::Left,
        Align::Right => CellAlignment::Right,
    }
}

fn fg(colour: anstyle::AnsiColor) -> anstyle::Style {
    anstyle::Style::new().fg_color(Some(colour.into()))
}

/// `s` cut to `max` characters, with `…` when it was longer (queries, messages in cells).
pub(crate) fn cut(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let kept: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_line_up_on_the_right_and_colour_needs_asking() {
        let mut t = TextTable::new(&[("table", Align::Left), ("rows", Align::Right)]);
        t.row(["public.a", "7"], Mark::Plain);
        t.row(["public.bb", "1234"], Mark::Alarm);
        let plain = t.render(TextStyle::PLAIN);
        assert!(!plain.contains('\u{1b}'), "{plain}");
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 4, "{plain}");
        assert!(lines[2].ends_with("   7"), "{plain}");
        assert!(lines[3].ends_with("1234"), "{plain}");
        assert_eq!(lines[2].len(), lines[3].len(), "{plain}");
        let coloured = t.render(TextStyle { colour: true });
        assert!(coloured.contains("\u{1b}[31m"), "{coloured}");
        assert_eq!(cut("a  b\nc", 10), "a b c");
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
