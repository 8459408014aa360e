//! A plain-text table with one column per backend.

/// Rows of `(label, cells)`; cells line up with `columns`.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<(String, Vec<String>)>,
}

impl Table {
    /// Renders as a Markdown-compatible table.
    pub(crate) fn render(&self) -> String {
        let ncol = self.columns.len() + 1;
        let mut widths = vec![0usize; ncol];
        let label_header = "property".to_string();
        let header: Vec<&String> = std::iter::once(&label_header)
            .chain(&self.columns)
            .collect();
        for (i, h) in header.iter().enumerate() {
            widths[i] = widths[i].max(h.chars().count());
        }
        for (label, cells) in &self.rows {
            widths[0] = widths[0].max(label.chars().count());
            for (i, c) in cells.iter().enumerate() {
                widths[i + 1] = widths[i + 1].max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| -> String {
            let mut out = String::from("|");
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                out.push(' ');
                out.push_str(c);
                out.push_str(&" ".repeat(pad));
                out.push_str(" |");
            }
            out.push('\n');
            out
        };
        let mut out = line(header.iter().map(|s| s.as_str()).collect());
        out.push('|');
        for w in &widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('|');
        }
        out.push('\n');
        for (label, cells) in &self.rows {
            let mut row: Vec<&str> = vec![label.as_str()];
            row.extend(cells.iter().map(String::as_str));
            while row.len() < ncol {
                row.push("");
            }
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let t = Table {
            columns: vec!["state".into(), "fs".into()],
            rows: vec![("files".into(), vec!["isolated".into(), "ok".into()])],
        };
        assert_eq!(
            t.render(),
            "| property | state    | fs |\n|----------|----------|----|\n| files    | isolated | ok |\n"
        );
    }
}
