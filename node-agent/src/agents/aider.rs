//! aider has no JSON output: its plain output (`--no-pretty`) is already a transcript, read for
//! what it says of edits (`Applied edit to PATH`), tokens and cost (`Tokens: 2.4k sent, 95
//! received. Cost: $0.0070 message, $0.0210 session.`), its model (`Model: … with … edit
//! format`) and limits (litellm's `RateLimitError`, the default families).

use super::tally::{Tally, Transcript};
use super::EventReader;

#[derive(Debug, Default)]
pub struct AiderReader;

impl EventReader for AiderReader {
    fn line(&mut self, line: &str, tally: &mut Tally, transcript: &mut Transcript) {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        if let Some(path) = trimmed.strip_prefix("Applied edit to ") {
            transcript.edited(path.trim(), "edit");
            return;
        }
        if let Some(rest) = trimmed.strip_prefix("Tokens: ") {
            let (sent, received) = tokens(rest);
            tally.add_tokens(sent, received);
            if let Some(cost) = session_cost(rest) {
                // Each line gives the session's cost so far.
                tally.cost_usd = Some(cost);
            }
            transcript.note(trimmed);
            return;
        }
        if let Some(rest) = trimmed.strip_prefix("Model: ") {
            tally.model = rest.split_whitespace().next().map(str::to_string);
        }
        if super::tally::is_limit_message(trimmed) && (trimmed.contains("Error") || trimmed.contains("limit")) {
            tally.limit(trimmed, None);
            tally.failed = Some(trimmed.to_string());
        }
        transcript.lines.push(line.to_string());
    }
}

/// `2.4k sent, 95 received. …` → (2400, 95).
fn tokens(text: &str) -> (Option<i64>, Option<i64>) {
    let mut sent = None;
    let mut received = None;
    for part in text.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let (Some(number), Some(what)) = (words.next(), words.next()) else { continue };
        let value = count(number);
        match what.trim_end_matches('.') {
            "sent" => sent = value,
            "received" => received = value,
            _ => {}
        }
    }
    (sent, received)
}

/// `2.4k` → 2400, `1.2M` → 1200000, `95` → 95.
fn count(text: &str) -> Option<i64> {
    let (digits, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1_000.0),
        'm' | 'M' => (&text[..text.len() - 1], 1_000_000.0),
        _ => (text, 1.0),
    };
    digits.replace(',', "").parse::<f64>().ok().map(|value| (value * scale).round() as i64)
}

/// `… Cost: $0.0070 message, $0.0210 session.` → 0.021.
fn session_cost(text: &str) -> Option<f64> {
    let (_, cost) = text.split_once("Cost: ")?;
    cost.split(',').find(|part| part.contains("session"))?.trim().trim_start_matches('$').split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use crate::agents::{read_all, Preset};

    const RUN: &str = "Aider v0.86.1
Model: gpt-4o with diff edit format
Git repo: .git with 3 files
Repo-map: using 1024 tokens, auto refresh

I'll fix the off-by-one in parse.py.

parse.py
<<<<<<< SEARCH
    return items[1:]
=======
    return items
>>>>>>> REPLACE

Applied edit to parse.py
Tokens: 2.4k sent, 95 received. Cost: $0.0070 message, $0.0070 session.
Tokens: 3.1k sent, 40 received. Cost: $0.0081 message, $0.0151 session.";

    #[test]
    fn edits_tokens_cost_and_model() {
        let (tally, lines) = read_all(Preset::Aider, RUN);
        assert!(lines.contains(&"edited parse.py (edit)".to_string()));
        assert_eq!((tally.input_tokens, tally.output_tokens, tally.cost_usd), (Some(5_500), Some(135), Some(0.0151)));
        assert_eq!(tally.model.as_deref(), Some("gpt-4o"));
        assert_eq!(tally.limit, None);
    }

    #[test]
    fn a_rate_limit_error() {
        let (tally, _) = crate::agents::read_all(
            crate::agents::Preset::Aider,
            "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-4o",
        );
        assert!(tally.limit.is_some());
    }
}
