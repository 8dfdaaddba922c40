//! Usage limits (SPEC §13): whether a coding agent's output says its account hit a usage or
//! rate limit, and when the limit resets. The default families are the messages the common
//! CLIs print — a relative duration ("try again in 5 days 22 hours 11 minutes"), an absolute
//! date ("try again at Jul 5th, 2026 8:19 PM", in the host's time zone), a clock time with an
//! IANA zone ("resets 3:50pm (Asia/Tokyo)"), an epoch suffix ("usage limit reached|1750708800"),
//! JSON errors of type `usage_limit_reached` with `resets_at` / `resets_in_seconds`, and bare
//! HTTP 429 rate-limit errors (no reset given); a host adds its own phrases
//! (`BAA_AGENT_LIMIT_PATTERNS`). Pure: the time and the host's zone come in.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// A usage limit the agent ran into.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LimitHit {
    /// When the limit resets (unix seconds), if the message says.
    pub resets_at: Option<i64>,
    /// The line that said so (at most 300 characters).
    pub message: String,
}

/// Words that make a line a limit message.
const LIMIT_WORDS: [&str; 8] = [
    "usage limit",
    "session limit",
    "rate limit",
    "limit reached",
    "too many requests",
    "usage_limit_reached",
    "quota exceeded",
    "resource_exhausted",
];

/// The last limit message in `output`, if any, with its reset time as of `now`. `local` is the
/// host's zone, for dates and clock times that name none; `extra` are the host's own phrases.
pub fn detect(output: &str, now: DateTime<Utc>, local: Tz, extra: &[String]) -> Option<LimitHit> {
    output.lines().rev().find_map(|line| {
        is_limit_line(line, extra).then(|| {
            let lower = line.to_lowercase();
            LimitHit { resets_at: reset_of(line, &lower, now, local), message: line.trim().chars().take(300).collect() }
        })
    })
}

/// Whether `line` reads as a usage or rate limit: one of the default families or a host's own
/// phrase.
pub fn is_limit_line(line: &str, extra: &[String]) -> bool {
    let lower = line.to_lowercase();
    LIMIT_WORDS.iter().any(|word| lower.contains(word))
        || lower.contains("429")
        || lower.contains("hour limit")
        || extra.iter().any(|phrase| !phrase.is_empty() && lower.contains(&phrase.to_lowercase()))
}

fn reset_of(line: &str, lower: &str, now: DateTime<Utc>, local: Tz) -> Option<i64> {
    json_reset(line, now)
        .or_else(|| epoch_suffix(line))
        .or_else(|| lower.split_once("try again in ").and_then(|(_, rest)| duration(rest)).map(|seconds| now.timestamp() + seconds))
        .or_else(|| lower.split_once("try again at ").and_then(|(_, rest)| date_time(rest, now, local)))
        .or_else(|| lower.split_once("resets ").and_then(|(_, rest)| clock_time(rest, now, local)))
}

/// `{"error": {"type": "usage_limit_reached", "resets_at": …}}`, anywhere in the object.
fn json_reset(line: &str, now: DateTime<Utc>) -> Option<i64> {
    let (start, end) = (line.find('{')?, line.rfind('}')?);
    let value: Value = serde_json::from_str(line.get(start..=end)?).ok()?;
    fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
        match value {
            Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|inner| find(inner, key))),
            Value::Array(items) => items.iter().find_map(|inner| find(inner, key)),
            _ => None,
        }
    }
    if let Some(at) = find(&value, "resets_at") {
        return match at {
            Value::Number(number) => number.as_i64().map(|seconds| if seconds > 100_000_000_000 { seconds / 1_000 } else { seconds }),
            Value::String(text) => DateTime::parse_from_rfc3339(text).ok().map(|at| at.timestamp()).or_else(|| text.parse().ok()),
            _ => None,
        };
    }
    find(&value, "resets_in_seconds").and_then(Value::as_i64).map(|seconds| now.timestamp() + seconds)
}

/// `…|1750708800` at the end of the line.
fn epoch_suffix(line: &str) -> Option<i64> {
    let (_, digits) = line.trim_end().rsplit_once('|')?;
    (digits.len() >= 9 && digits.len() <= 11 && digits.bytes().all(|byte| byte.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// `5 days 22 hours 11 minutes`, `2h 30m`, `45 seconds`: seconds.
fn duration(text: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut found = false;
    let mut words = text.split(|c: char| c.is_whitespace() || c == ',').filter(|word| !word.is_empty()).peekable();
    while let Some(word) = words.next() {
        let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            if word == "and" {
                continue;
            }
            break;
        }
        let number: i64 = digits.parse().ok()?;
        let attached = &word[digits.len()..];
        let unit = if attached.is_empty() { words.next().unwrap_or("") } else { attached };
        let unit = unit.trim_end_matches(['.', ';', ')']);
        let seconds = match unit {
            "d" | "day" | "days" => 86_400,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            _ => break,
        };
        total += number * seconds;
        found = true;
    }
    found.then_some(total)
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// `jul 5th, 2026 8:19 pm` (lower case) in `zone`; without a date, the next such time.
fn date_time(text: &str, now: DateTime<Utc>, zone: Tz) -> Option<i64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|word| !word.is_empty())
        .map(|word| word.trim_end_matches('.'))
        .collect();
    let month = words.first().and_then(|word| MONTHS.iter().position(|month| word.starts_with(month)));
    let Some(month) = month else { return clock_time(text, now, zone) };
    let day: u32 = words.get(1)?.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse().ok()?;
    let year: i32 = words.get(2)?.parse().ok()?;
    let time = time_of_day(&words[3..].join(" "))?;
    let date = NaiveDate::from_ymd_opt(year, month as u32 + 1, day)?;
    zone.from_local_datetime(&date.and_time(time)).earliest().map(|at| at.timestamp())
}

/// `3:50pm (asia/tokyo)` (lower case): the next such time after `now`, in the named zone or
/// in `local`.
fn clock_time(text: &str, now: DateTime<Utc>, local: Tz) -> Option<i64> {
    let time = time_of_day(text)?;
    let zone =
        text.split_once('(').and_then(|(_, rest)| rest.split_once(')')).and_then(|(name, _)| find_zone(name.trim())).unwrap_or(local);
    let today = now.with_timezone(&zone).date_naive();
    [today, today.succ_opt()?]
        .into_iter()
        .filter_map(|date| zone.from_local_datetime(&date.and_time(time)).earliest())
        .map(|at| at.timestamp())
        .find(|at| *at > now.timestamp())
}

/// An IANA zone by name, whatever its case (`asia/tokyo`).
fn find_zone(name: &str) -> Option<Tz> {
    chrono_tz::TZ_VARIANTS.iter().copied().find(|zone| zone.name().eq_ignore_ascii_case(name))
}

/// `8:19 pm`, `3:50pm`, `3pm`, `15:50` at the start of `text`.
fn time_of_day(text: &str) -> Option<NaiveTime> {
    let text = text.trim_start();
    let clock: String = text.chars().take_while(|c| c.is_ascii_digit() || *c == ':').collect();
    let rest = text[clock.len()..].trim_start();
    let (hour, minute) = match clock.split_once(':') {
        Some((hour, minute)) => (hour.parse::<u32>().ok()?, minute.get(..2)?.parse::<u32>().ok()?),
        None => (clock.parse::<u32>().ok()?, 0),
    };
    let hour = if rest.starts_with("pm") && hour < 12 {
        hour + 12
    } else if rest.starts_with("am") && hour == 12 {
        0
    } else {
        hour
    };
    if clock.split_once(':').is_none() && !(rest.starts_with("am") || rest.starts_with("pm")) {
        return None;
    }
    NaiveTime::from_hms_opt(hour, minute, 0)
}

/// The host's IANA time zone, for limit messages that name none (UTC when it cannot be told).
pub fn host_zone() -> Tz {
    iana_time_zone::get_timezone().ok().and_then(|name| name.parse().ok()).unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_default_family_gives_its_reset_time() {
        // 12:00 UTC on 1 July 2026 is 14:00 in Paris and 21:00 in Tokyo.
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let at = |y, mo, d, h, mi| Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp());
        let table: [(&str, Option<i64>); 12] = [
            // codex-cli 0.171: a curly apostrophe, the host's local time, no date on the same day.
            ("ERROR: You’ve hit your usage limit. Upgrade to Pro or try again at 2:49 PM.", at(2026, 7, 1, 12, 49)),
            // Claude Code 2.1 with a subscription.
            ("You've hit your session limit · resets 2:49pm (UTC)", at(2026, 7, 1, 14, 49)),
            (
                "You've hit your usage limit. To get more access now, send a request to your admin or try again in 5 days 22 hours 11 minutes.",
                Some(now.timestamp() + ((5 * 24 + 22) * 60 + 11) * 60),
            ),
            ("■ You've hit your usage limit. Upgrade to Pro (https://openai.com/chatgpt/pricing) or try again at Jul 5th, 2026 8:19 PM.", at(2026, 7, 5, 18, 19)),
            ("You've hit your session limit · resets 3:50pm (Asia/Tokyo)", at(2026, 7, 2, 6, 50)),
            ("5-hour limit reached ∙ resets 4pm", at(2026, 7, 1, 14, 0)),
            ("Claude AI usage limit reached|1750708800", Some(1_750_708_800)),
            (r#"{"type":"error","error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":1782906000}}"#, Some(1_782_906_000)),
            (r#"stream error: {"error":{"type":"usage_limit_reached","resets_in_seconds":3600}}"#, Some(now.timestamp() + 3_600)),
            (r#"{"error":{"type":"usage_limit_reached","resets_at":"2026-07-01T18:30:00Z"}}"#, at(2026, 7, 1, 18, 30)),
            ("ERROR: unexpected status 429 Too Many Requests: Rate limit reached for requests", None),
            ("[API Error: 429 RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Generate Content API requests per minute']", None),
        ];
        for (line, resets_at) in table {
            let output = format!("working on it\n{line}\nexiting\n");
            let hit = detect(&output, now, paris, &[]).unwrap_or_else(|| panic!("not seen as a limit: {line}"));
            assert_eq!(hit.resets_at, resets_at, "{line}");
            assert_eq!(hit.message, line.trim().chars().take(300).collect::<String>());
        }
    }

    #[test]
    fn other_failures_are_no_limit_and_a_host_adds_its_own_phrases() {
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        for line in ["error: test failed, try again in 5 minutes", "connection reset by peer", "exit code 1"] {
            assert_eq!(detect(line, now, Tz::UTC, &[]), None, "{line}");
        }
        let extra = vec!["out of credits".to_string()];
        let hit = detect("Sorry: you are OUT OF CREDITS for today", now, Tz::UTC, &extra).unwrap();
        assert_eq!(hit.resets_at, None);
    }
}
