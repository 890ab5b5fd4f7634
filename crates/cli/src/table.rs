//! Aligned text tables. Widths are display columns (a CJK character or an emoji takes two, a
//! combining mark none), so rows stay aligned whatever the text. Control characters in cells (a
//! customer's text may hold escape sequences) never reach the terminal.

use unicode_width::UnicodeWidthStr;

/// Between two columns.
const GAP: &str = "  ";

/// Columns a text takes in a terminal.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Printable text: tabs become spaces, other control characters and the bidirectional overrides
/// (which would reorder what follows them on screen) become U+FFFD; line breaks stay.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '\r')
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// At most `max` columns, ending in `…` where cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = width(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Rows under a header, each column as wide as its widest cell. A cell may hold several lines
/// (the row then takes as many); the last column is not padded, so no line ends in spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
    max: Vec<(usize, usize)>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_string()).collect(), ..Table::default() }
    }

    /// Labels and values, without a header: one object's fields.
    pub fn fields() -> Table {
        Table::default()
    }

    /// Right-aligns these columns (numbers, durations).
    pub fn right(mut self, cols: &[usize]) -> Table {
        self.right.extend_from_slice(cols);
        self
    }

    /// Cuts the lines of column `col` to at most `max` columns.
    pub fn max_width(mut self, col: usize, max: usize) -> Table {
        self.max.push((col, max));
        self
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn cell_lines(&self, col: usize, cell: &str) -> Vec<String> {
        let max = self.max.iter().rev().find(|(c, _)| *c == col).map(|(_, m)| *m);
        sanitize(cell).split('\n').map(|l| max.map_or_else(|| l.to_string(), |m| truncate(l, m))).collect()
    }

    /// Each row as its cells' lines, the header first.
    fn laid_out(&self) -> Vec<Vec<Vec<String>>> {
        let header = (!self.header.is_empty()).then(|| self.header.iter().map(|h| vec![sanitize(h)]).collect());
        let rows = self.rows.iter().map(|r| r.iter().enumerate().map(|(i, c)| self.cell_lines(i, c)).collect());
        header.into_iter().chain(rows).collect()
    }

    /// The display width of each column.
    pub fn widths(&self) -> Vec<usize> {
        widths_of(&self.laid_out())
    }

    pub fn render(&self) -> String {
        let rows = self.laid_out();
        let widths = widths_of(&rows);
        let mut out = String::new();
        for row in &rows {
            out.push_str(&render_row(row, &widths, &self.right));
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

fn widths_of(rows: &[Vec<Vec<String>>]) -> Vec<usize> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        if widths.len() < row.len() {
            widths.resize(row.len(), 0);
        }
        for (i, lines) in row.iter().enumerate() {
            widths[i] = lines.iter().map(|l| width(l)).fold(widths[i], usize::max);
        }
    }
    widths
}

/// One row, as many lines as its tallest cell, each ending in '\n'.
fn render_row(row: &[Vec<String>], widths: &[usize], right: &[usize]) -> String {
    let height = row.iter().map(Vec::len).max().unwrap_or(0);
    let last = row.iter().rposition(|lines| lines.iter().any(|l| !l.is_empty()));
    let mut out = String::new();
    for n in 0..height {
        let mut line = String::new();
        for (i, lines) in row.iter().enumerate() {
            if Some(i) > last {
                break;
            }
            let text = lines.get(n).map_or("", String::as_str);
            let pad = " ".repeat(widths.get(i).copied().unwrap_or(0).saturating_sub(width(text)));
            if i > 0 {
                line.push_str(GAP);
            }
            if right.contains(&i) {
                line.push_str(&pad);
                line.push_str(text);
            } else {
                line.push_str(text);
                if Some(i) != last {
                    line.push_str(&pad);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Rows printed one at a time as they come (a live stream), aligned under a header that is
/// printed again whenever a column had to grow.
#[derive(Debug, Clone)]
pub struct StreamTable {
    header: Vec<String>,
    right: Vec<usize>,
    widths: Vec<usize>,
}

impl StreamTable {
    /// `min` gives the columns a starting width, so the first rows rarely make them grow.
    pub fn new(header: &[&str], right: &[usize], min: &[usize]) -> StreamTable {
        let widths = header.iter().enumerate().map(|(i, h)| width(h).max(min.get(i).copied().unwrap_or(0))).collect();
        StreamTable { header: header.iter().map(|h| (*h).to_string()).collect(), right: right.to_vec(), widths }
    }

    /// The header line.
    pub fn header(&self) -> String {
        let row: Vec<Vec<String>> = self.header.iter().map(|h| vec![h.clone()]).collect();
        render_row(&row, &self.widths, &self.right)
    }

    /// The row's lines, and whether a column grew for it (the header then needs printing again).
    pub fn row(&mut self, cells: &[String]) -> (String, bool) {
        let row: Vec<Vec<String>> =
            cells.iter().map(|c| sanitize(c).split('\n').map(str::to_string).collect()).collect();
        let mut grew = false;
        for (i, lines) in row.iter().enumerate() {
            let w = lines.iter().map(|l| width(l)).max().unwrap_or(0);
            if i >= self.widths.len() {
                self.widths.push(w);
                grew = true;
            } else if w > self.widths[i] {
                self.widths[i] = w;
                grew = true;
            }
        }
        (render_row(&row, &self.widths, &self.right), grew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line's display width up to each column start must match: checks alignment by the
    /// position of a marker text in each line.
    fn column_of(line: &str, marker: &str) -> usize {
        width(&line[..line.find(marker).unwrap()])
    }

    #[test]
    fn columns_align_by_display_width_with_wide_and_combining_text() {
        let mut t = Table::new(&["AGENT", "NAME", "STATE"]);
        t.row(["ann", "Ann", "ready"]);
        t.row(["li", "李小龙", "not ready"]); // three wide characters: six columns
        t.row(["jo", "Jose\u{301}", "wrap-up"]); // é as e + U+0301: four columns
        t.row(["em", "🙂🙂", "offline"]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "AGENT  NAME    STATE");
        assert_eq!(lines[2], "li     李小龙  not ready");
        let starts: Vec<usize> = ["STATE", "ready", "not ready", "wrap-up", "offline"]
            .iter()
            .zip(&lines)
            .map(|(m, l)| column_of(l, m))
            .collect();
        assert!(starts.iter().all(|s| *s == starts[0]), "{out}");
        assert!(out.lines().all(|l| !l.ends_with(' ')), "no trailing spaces: {out:?}");
    }

    #[test]
    fn numbers_align_right_and_absent_values_keep_their_column() {
        let mut t = Table::new(&["QUEUE", "WAITING", "SL"]).right(&[1, 2]);
        t.row(["sales", "12", "95.0 %"]);
        t.row(["support", "3", "-"]);
        assert_eq!(t.render(), "QUEUE    WAITING      SL\nsales         12  95.0 %\nsupport        3       -\n");
    }

    #[test]
    fn a_cell_of_several_lines_makes_a_taller_row() {
        let mut t = Table::fields();
        t.row(["state", "queued"]);
        t.row(["states", "queued   14:00:00\noffered  14:00:05"]);
        t.row(["agent", "-"]);
        assert_eq!(t.render(), "state   queued\nstates  queued   14:00:00\n        offered  14:00:05\nagent   -\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut t = Table::new(&["TEXT"]);
        t.row(["\u{1b}[2Jhi\tthere\u{7}\r\u{202E}evil"]);
        let out = t.render();
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert!(out.contains("\u{FFFD}[2Jhi there\u{FFFD}\u{FFFD}evil"), "{out:?}");
    }

    #[test]
    fn long_cells_are_cut_to_their_column_limit() {
        assert_eq!(truncate("abcdef", 6), "abcdef");
        assert_eq!(truncate("abcdefg", 6), "abcde…");
        assert_eq!(truncate("李小龙李小龙", 6), "李小…");
        let mut t = Table::new(&["ID", "SUBJECT"]).max_width(1, 8);
        t.row(["1", "My invoice is wrong"]);
        assert_eq!(t.render(), "ID  SUBJECT\n1   My invo…\n");
    }

    #[test]
    fn a_stream_keeps_its_columns_and_says_when_one_grew() {
        let mut s = StreamTable::new(&["TIME", "QUEUE", "WAITING"], &[2], &[8, 6]);
        assert_eq!(s.header(), "TIME      QUEUE   WAITING\n");
        let (line, grew) = s.row(&["14:00:00".into(), "sales".into(), "3".into()]);
        assert_eq!((line.as_str(), grew), ("14:00:00  sales         3\n", false));
        let (line, grew) = s.row(&["14:00:01".into(), "support-de".into(), "0".into()]);
        assert!(grew);
        assert_eq!(line, "14:00:01  support-de        0\n");
        assert_eq!(s.header(), "TIME      QUEUE       WAITING\n");
    }
}
