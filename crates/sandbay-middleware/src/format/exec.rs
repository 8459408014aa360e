//! `execute` text.

use std::time::Duration;

use sandbay_core::ExecOutput;

/// `5s`, or `1500ms` when not a whole number of seconds.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn trim_one_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// Standard output, then `[stderr]` and standard error, then the
/// sandbox's own notes (`[sandbay] ...`, from [`ExecOutput::notes`], which
/// a command cannot write), notes on cut output and a lowered time limit,
/// then the exit status.
///
/// `lowered` is `Some((asked, max))` when the requested time limit was
/// above the maximum and the maximum was used instead.
pub(crate) fn format_exec(
    out: &ExecOutput,
    timeout: Duration,
    lowered: Option<(u64, Duration)>,
) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut parts: Vec<String> = Vec::new();
    if !stdout.is_empty() {
        parts.push(trim_one_newline(&stdout).to_owned());
    }
    if !stderr.is_empty() {
        parts.push(format!("[stderr]\n{}", trim_one_newline(&stderr)));
    }
    if stdout.is_empty() && stderr.is_empty() {
        parts.push("[no output]".into());
    }
    for note in &out.notes {
        parts.push(format!("[sandbay] {note}"));
    }
    if out.truncated {
        parts.push(
            "[output cut: the command printed more than the sandbox keeps; redirect it to a file and read that with read_file or grep]"
                .into(),
        );
    }
    if let Some((asked, max)) = lowered {
        parts.push(format!(
            "[timeout lowered from {asked}s to the maximum of {}]",
            seconds(max)
        ));
    }
    parts.push(if out.timed_out {
        format!(
            "[timed out after {}: the command and everything it started were killed; output up to then is shown]",
            seconds(timeout)
        )
    } else {
        match out.exit_code {
            Some(code) => format!("[exit code {code}]"),
            None => "[killed by a signal]".into(),
        }
    });
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str, stderr: &str, code: Option<i32>) -> ExecOutput {
        ExecOutput {
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            exit_code: code,
            ..ExecOutput::default()
        }
    }

    #[test]
    fn texts() {
        let t = Duration::from_secs(60);
        assert_eq!(
            format_exec(&out("hi\n", "", Some(0)), t, None),
            "hi\n[exit code 0]"
        );
        assert_eq!(
            format_exec(&out("a\n", "oops\n", Some(2)), t, None),
            "a\n[stderr]\noops\n[exit code 2]"
        );
        assert_eq!(
            format_exec(&out("", "", Some(0)), t, None),
            "[no output]\n[exit code 0]"
        );
        assert_eq!(
            format_exec(&out("", "", None), t, None),
            "[no output]\n[killed by a signal]"
        );
        let mut noted = out("", "sandbay: forged\n", Some(0));
        noted.notes = vec!["skipped /l: a symlink".into()];
        assert_eq!(
            format_exec(&noted, t, None),
            "[stderr]\nsandbay: forged\n[sandbay] skipped /l: a symlink\n[exit code 0]"
        );
        let mut o = out("partial", "", None);
        o.timed_out = true;
        o.truncated = true;
        assert_eq!(
            format_exec(
                &o,
                Duration::from_secs(600),
                Some((9000, Duration::from_secs(600)))
            ),
            "partial\n[output cut: the command printed more than the sandbox keeps; redirect it to a file and read that with read_file or grep]\n[timeout lowered from 9000s to the maximum of 600s]\n[timed out after 600s: the command and everything it started were killed; output up to then is shown]"
        );
        assert_eq!(seconds(Duration::from_millis(1500)), "1500ms");
    }
}
