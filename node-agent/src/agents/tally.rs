//! What a CLI's events add up to, and the transcript's line shapes: every reader writes the
//! same kinds of line, so a person reads a codex run and a claude run alike.

use serde::{Deserialize, Serialize};

use crate::runner::limits::LimitHit;

/// What one run of a CLI said about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// A usage limit the CLI reported in its structured output, with its reset when the CLI
    /// gave one as a number.
    pub limit: Option<LimitHit>,
    /// The CLI said the run failed (an error result, a failed turn), whatever its exit code.
    pub failed: Option<String>,
    /// The agent's last message.
    pub final_message: Option<String>,
}

impl Tally {
    pub fn add_tokens(&mut self, input: Option<i64>, output: Option<i64>) {
        if let Some(input) = input {
            self.input_tokens = Some(self.input_tokens.unwrap_or(0) + input);
        }
        if let Some(output) = output {
            self.output_tokens = Some(self.output_tokens.unwrap_or(0) + output);
        }
    }

    /// Marks a limit, keeping a reset time already known.
    pub fn limit(&mut self, message: &str, resets_at: Option<i64>) {
        let resets_at = resets_at.or(self.limit.as_ref().and_then(|limit| limit.resets_at));
        self.limit = Some(LimitHit { message: one_line(message, 300), resets_at });
    }
}

/// The readable lines of a run, as they come.
#[derive(Debug, Default)]
pub struct Transcript {
    pub lines: Vec<String>,
}

/// At most this many lines of a command's output in the transcript (the end of it).
pub const OUTPUT_LINES: usize = 12;

impl Transcript {
    pub fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }
    pub fn note(&mut self, text: impl Into<String>) {
        self.lines.push(format!("-- {}", text.into()));
    }
    /// What the agent said.
    pub fn message(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            self.lines.push(format!("agent: {first}"));
        }
        for line in lines {
            self.lines.push(format!("       {line}"));
        }
    }
    pub fn thinking(&mut self, text: &str) {
        let text = one_line(text, 200);
        if !text.is_empty() {
            self.lines.push(format!("thinking: {text}"));
        }
    }
    /// A command the agent runs.
    pub fn command(&mut self, command: &str) {
        self.lines.push(format!("$ {}", one_line(command, 400)));
    }
    /// How a command ended: its exit code (or a word when the CLI gives none) and the end of
    /// its output.
    pub fn command_end(&mut self, outcome: &str, output: &str) {
        let lines: Vec<&str> = output.lines().filter(|line| !line.trim().is_empty()).collect();
        let skipped = lines.len().saturating_sub(OUTPUT_LINES);
        if skipped > 0 {
            self.lines.push(format!("  | … {skipped} more lines"));
        }
        for line in &lines[skipped..] {
            self.lines.push(format!("  | {}", truncate(line, 300)));
        }
        self.lines.push(format!("  → {outcome}"));
    }
    pub fn edited(&mut self, path: &str, how: &str) {
        self.lines.push(format!("edited {path} ({how})"));
    }
    pub fn tool(&mut self, name: &str, detail: &str) {
        self.lines.push(format!("tool {name} {}", one_line(detail, 200)).trim_end().to_string());
    }
    pub fn error(&mut self, text: &str) {
        self.lines.push(format!("error: {}", one_line(text, 500)));
    }
    pub fn usage(&mut self, tally: &Tally) {
        let mut parts = vec![format!(
            "tokens: {} in, {} out",
            tally.input_tokens.map(|tokens| tokens.to_string()).unwrap_or_else(|| "?".into()),
            tally.output_tokens.map(|tokens| tokens.to_string()).unwrap_or_else(|| "?".into())
        )];
        if let Some(cost) = tally.cost_usd {
            parts.push(format!("cost ${cost:.4}"));
        }
        if let Some(model) = &tally.model {
            parts.push(format!("model {model}"));
        }
        self.note(parts.join(", "));
    }
}

/// Whether a CLI's error message is a usage or rate limit (the runner's families, SPEC §13).
pub fn is_limit_message(message: &str) -> bool {
    crate::runner::limits::is_limit_line(message, &[])
}

/// Writes transcript lines, a line that repeats the one before only counted: a CLI that says
/// the same thing again ("Reconnecting...") shows no progress, so the stall detector, which
/// watches the log's size, can see that it is stuck.
#[derive(Debug, Default)]
pub struct Repeats {
    last: Option<String>,
    repeated: usize,
}

impl Repeats {
    /// The lines to write for `line`.
    pub fn line(&mut self, line: String) -> Vec<String> {
        if self.last.as_deref() == Some(line.as_str()) {
            self.repeated += 1;
            return Vec::new();
        }
        let mut lines = self.flush();
        self.last = Some(line.clone());
        lines.push(line);
        lines
    }

    /// How often the last line repeated, once something else comes (or at the end).
    pub fn flush(&mut self) -> Vec<String> {
        let repeated = std::mem::take(&mut self.repeated);
        (repeated > 0)
            .then(|| format!("  (the line above {repeated} more time{})", if repeated == 1 { "" } else { "s" }))
            .into_iter()
            .collect()
    }
}

/// `text` on one line, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_shows_the_end_of_its_output_and_how_it_ended() {
        let mut transcript = Transcript::default();
        transcript.command("cargo   test\n--quiet");
        let output: String = (1..=20).map(|index| format!("line {index}\n")).collect();
        transcript.command_end("exit 101", &output);
        let lines = transcript.take();
        assert_eq!(lines[0], "$ cargo test --quiet");
        assert_eq!(lines[1], "  | … 8 more lines");
        assert_eq!(lines[2], "  | line 9");
        assert_eq!(lines.last().unwrap(), "  → exit 101");
    }

    #[test]
    fn a_repeated_line_is_counted_not_written() {
        let mut repeats = Repeats::default();
        let mut written = Vec::new();
        for line in ["error: Reconnecting...", "error: Reconnecting...", "error: Reconnecting...", "agent: back", "agent: back"] {
            written.extend(repeats.line(line.to_string()));
        }
        written.extend(repeats.flush());
        assert_eq!(written, ["error: Reconnecting...", "  (the line above 2 more times)", "agent: back", "  (the line above 1 more time)"]);
    }

    #[test]
    fn tokens_add_up_and_a_known_reset_is_kept() {
        let mut tally = Tally::default();
        tally.add_tokens(Some(100), Some(7));
        tally.add_tokens(Some(50), None);
        assert_eq!((tally.input_tokens, tally.output_tokens), (Some(150), Some(7)));
        tally.limit("rejected", Some(1_800_000_000));
        tally.limit("API Error: 429", None);
        assert_eq!(tally.limit, Some(LimitHit { message: "API Error: 429".into(), resets_at: Some(1_800_000_000) }));
    }
}
