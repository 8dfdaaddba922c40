//! Usage limits belong to an account, not a task (SPEC §13). A failure that carries `quota`
//! settles its step as `waiting_quota` — no attempt spent, the task going on — and parks the
//! account until the reset the agent's message gave (else 15 min, then 1 h, then 4 h for each
//! further park in a row without one). While an account is parked no host that runs its agent
//! under it is granted an agent step; at the reset the leader makes the waiting steps ready
//! again (on their task's host); `accounts.resume` ends a wait early.

use super::blobs::Blobs;
use shared::wire::AccountResumed;

use super::clock::{Clock, Random};
use super::db::{Db, Statement};
use super::error::{ApiError, ApiResult};
use super::records::fence;
use super::{Call, Core, Reply};

/// How long an account waits when the limit message gave no reset: the first park in a row,
/// the second, and every one after (a park more than a day after the last starts a new row).
pub const UNKNOWN_RESET_WAITS_SEC: [i64; 3] = [15 * 60, 60 * 60, 4 * 60 * 60];

// ?1 marker, ?2 account. The step that hit the limit waits for its account, and gets back the
// attempt it spent.
const WAIT_FOR_ACCOUNT_SQL: &str = "UPDATE steps SET waiting_account = ?2, max_attempts = max_attempts + 1 \
     WHERE claim_token = ?1 AND status = 'waiting_quota'";

// ?1 marker, ?2 account, ?3 resets_at or NULL, ?4 message, ?5 host, ?6 now, ?7 ?8 ?9 the waits
// without a reset time. Only when the marked step did end waiting (a repeat changes nothing).
const PARK_ACCOUNT_SQL: &str = "INSERT INTO accounts (account, parked_until, message, parked_at, parked_by, unknown_resets) \
     SELECT ?2, COALESCE(?3, ?6 + ?7), ?4, ?6, ?5, CASE WHEN ?3 IS NULL THEN 1 ELSE 0 END \
     WHERE ?2 IS NOT NULL AND EXISTS (SELECT 1 FROM steps WHERE claim_token = ?1 AND status = 'waiting_quota') \
     ON CONFLICT (account) DO UPDATE SET \
       parked_until = MAX(CASE WHEN accounts.parked_until > ?6 THEN accounts.parked_until ELSE 0 END, COALESCE(?3, ?6 + \
         CASE WHEN accounts.parked_at < ?6 - 86400 OR accounts.unknown_resets = 0 THEN ?7 WHEN accounts.unknown_resets = 1 THEN ?8 ELSE ?9 END)), \
       unknown_resets = CASE WHEN ?3 IS NOT NULL THEN 0 WHEN accounts.parked_at < ?6 - 86400 THEN 1 ELSE accounts.unknown_resets + 1 END, \
       message = excluded.message, parked_at = excluded.parked_at, parked_by = excluded.parked_by";

// ?1 marker, ?2 account, ?3 now. The waiting step's task remembers it.
const RECORD_PARK_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT s.task_id, 'account_parked', 'step ' || s.step_index || ' waits: account ' || ?2 || ' is parked until ' || \
       (SELECT datetime(parked_until, 'unixepoch') FROM accounts WHERE account = ?2) || ' UTC by a usage limit', ?3 \
     FROM steps s WHERE s.claim_token = ?1 AND s.status = 'waiting_quota'";

/// How many statements [`park_statements`] makes.
pub const PARK_STATEMENTS: usize = 3;

/// The statements, after the settlement under `marker`, that make its step wait for `account`
/// and park the account.
pub fn park_statements(marker: &str, account: &str, resets_at: Option<i64>, message: &str, host: &str, now: i64) -> Vec<Statement> {
    let [first, second, later] = UNKNOWN_RESET_WAITS_SEC;
    vec![
        Statement::new(WAIT_FOR_ACCOUNT_SQL, vec![marker.into(), account.into()]),
        Statement::new(
            PARK_ACCOUNT_SQL,
            vec![
                marker.into(),
                account.into(),
                resets_at.into(),
                message.into(),
                host.into(),
                now.into(),
                first.into(),
                second.into(),
                later.into(),
            ],
        ),
        Statement::new(RECORD_PARK_SQL, vec![marker.into(), account.into(), now.into()]),
    ]
}

// ?1 controller, ?2 term, ?3 now. The leader makes the steps whose account's reset has come
// ready again.
const READY_AFTER_RESET_SQL: &str = concat!(
    "UPDATE steps SET status = 'ready', ready_at = ?3, waiting_account = NULL \
     WHERE status = 'waiting_quota' AND waiting_account IS NOT NULL \
       AND waiting_account IN (SELECT account FROM accounts WHERE parked_until <= ?3) AND ",
    fence!("1", "2", "3")
);

/// The leader's statement that readies the steps whose account's limit has reset.
pub fn ready_after_reset(controller_id: &str, term: i64, now: i64) -> Statement {
    Statement::new(READY_AFTER_RESET_SQL, vec![controller_id.into(), term.into(), now.into()])
}

// ?1 now.
pub const PARKED_ACCOUNTS_SQL: &str = "SELECT account, parked_until, message, parked_at, parked_by FROM accounts \
     WHERE parked_until > ?1 ORDER BY parked_until, account";

// ?1 account, ?2 now.
// The run of parks without a reset time goes on: the limit may well be hit again at once.
const RESUME_ACCOUNT_SQL: &str = "UPDATE accounts SET parked_until = ?2, resumed_at = ?2 \
     WHERE account = ?1 AND parked_until > ?2 RETURNING account";
const READY_STEPS_OF_ACCOUNT_SQL: &str = "UPDATE steps SET status = 'ready', ready_at = ?2, waiting_account = NULL \
     WHERE waiting_account = ?1 AND status = 'waiting_quota' RETURNING step_id";
pub async fn resume<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let account = call.param("account");
    call.body(true)?;
    let results = core
        .db
        .batch(vec![
            Statement::new(RESUME_ACCOUNT_SQL, vec![account.into(), call.now.into()]),
            Statement::new(READY_STEPS_OF_ACCOUNT_SQL, vec![account.into(), call.now.into()]),
        ])
        .await?;
    let resumed_steps = results[1].iter().map(|row| row.text("step_id")).collect::<Result<Vec<_>, _>>()?;
    if results[0].is_empty() && resumed_steps.is_empty() {
        return Err(ApiError::invalid_transition(format!("account {account} is not parked and no step waits for it"))
            .with_detail("account", account));
    }
    Reply::ok(&AccountResumed { account: account.to_string(), resumed_steps })
}
