//! The MySQL / MariaDB batch in a constant number of round trips.
//!
//! A batch's rows travel as JSON documents bound to session variables
//! (`SET @sf_… = ?`, one prepared statement), and every statement that
//! needs them reads them with `JSON_TABLE` inside multi-statement text
//! queries (the driver negotiates `CLIENT_MULTI_STATEMENTS`). A batch is:
//!
//! 1. `BEGIN`;
//! 2. `SET` of the batch's rows (and its quarantined records);
//! 3. fill the staging tables from them, then read the existing ledger rows
//!    `FOR UPDATE`, in identity order (one multi-statement);
//! 4. `SET` of the LLM report deltas computed from what step 3 read (only
//!    when the batch moves a report);
//! 5. move `user_event_counts`, replace and insert ledger rows, move the
//!    reports, quarantine, release the variables (one multi-statement; the
//!    inserted row counts are checked against what step 3 saw);
//! 6. `COMMIT`.
//!
//! Six round trips whatever the batch size, unless one `SET` would exceed
//! `PACKET_BUDGET` (very wide rows): the documents are then cut into several
//! variables and sent by as many `SET`s. Values travel as JSON strings where
//! exactness matters (decimals) and as base64 for bytes; a missing key is
//! SQL NULL. `JSON_TABLE` needs MariaDB ≥ 10.6 or MySQL ≥ 8.0.4.

mod documents;
mod statements;

use super::dialect::Flavor;
use super::sql::{self, ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::{ApplyResult, RejectedRecord, StoreError};
use crate::aggregate::StagedRows;
use documents::{activity_json, json_arrays, llm_json, reject_json};
use futures::TryStreamExt;
use sqlx::mysql::{MySql, MySqlRow};
use sqlx::{Either, Executor, Transaction};
use statements::{
    ACTIVITY_TABLE, LLM_TABLE, activity_delta, fill, ledger_update, reject_insert, report_writes,
};

/// Largest `SET` statement sent at once. MariaDB's default
/// `max_allowed_packet` is 16 MiB and MySQL 8's 64 MiB.
pub const PACKET_BUDGET: usize = 4 << 20;

/// Session variables holding one step's documents, sent by as few `SET`s as
/// `PACKET_BUDGET` allows.
#[derive(Default)]
struct Variables {
    /// `(name, document)`.
    set: Vec<(String, String)>,
}

impl Variables {
    /// Bind `arrays` to `@sf_<prefix><n>`; returns the variables' names.
    fn add(&mut self, prefix: &str, arrays: Vec<String>) -> Vec<String> {
        arrays
            .into_iter()
            .enumerate()
            .map(|(n, doc)| {
                let name = format!("@sf_{prefix}{n}");
                self.set.push((name.clone(), doc));
                name
            })
            .collect()
    }

    /// Send the variables; one round trip per `PACKET_BUDGET`.
    async fn send(
        &self,
        tx: &mut Transaction<'static, MySql>,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let mut group: Vec<&(String, String)> = Vec::new();
        let mut bytes = 0;
        for (i, var) in self.set.iter().enumerate() {
            bytes += var.1.len();
            group.push(var);
            let next = self.set.get(i + 1).map_or(usize::MAX, |v| v.1.len());
            if bytes.saturating_add(next) > PACKET_BUDGET {
                send_set(tx, &group, result).await?;
                group.clear();
                bytes = 0;
            }
        }
        Ok(())
    }

    /// `SET @a = NULL, …`: releases the documents' server memory.
    fn release(&self) -> Option<String> {
        (!self.set.is_empty()).then(|| {
            let names: Vec<String> = self
                .set
                .iter()
                .map(|(n, _)| format!("{n} = NULL"))
                .collect();
            format!("SET {}", names.join(", "))
        })
    }
}

async fn send_set(
    tx: &mut Transaction<'static, MySql>,
    group: &[&(String, String)],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let names: Vec<String> = group.iter().map(|(n, _)| format!("{n} = ?")).collect();
    let text = format!("SET {}", names.join(", "));
    let mut q = sqlx::query(&text);
    for (_, doc) in group {
        q = q.bind(doc.as_str());
    }
    q.execute(&mut **tx).await?;
    result.statements += 1;
    Ok(())
}

/// One statement's outcome within a multi-statement query.
#[derive(Default)]
struct Outcome {
    rows_affected: u64,
    rows: Vec<MySqlRow>,
}

/// Run `statements` as one multi-statement text query (one round trip);
/// one outcome per statement, in order.
async fn multi(
    tx: &mut Transaction<'static, MySql>,
    statements: &[String],
    result: &mut ApplyResult,
) -> Result<Vec<Outcome>, StoreError> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    let text = statements.join(";\n");
    let mut outcomes = Vec::with_capacity(statements.len());
    let mut current = Outcome::default();
    {
        let mut stream = (&mut **tx).fetch_many(text.as_str());
        while let Some(step) = stream.try_next().await? {
            match step {
                Either::Left(done) => {
                    current.rows_affected = done.rows_affected();
                    outcomes.push(std::mem::take(&mut current));
                }
                Either::Right(row) => current.rows.push(row),
            }
        }
    }
    result.statements += 1;
    if outcomes.len() != statements.len() {
        return Err(StoreError::Protocol(format!(
            "multi-statement query returned {} results for {} statements",
            outcomes.len(),
            statements.len()
        )));
    }
    Ok(outcomes)
}

pub async fn apply(
    tx: &mut Transaction<'static, MySql>,
    rows: &StagedRows,
    rejects: &[RejectedRecord],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    if rows.activity.is_empty() && rows.llm.is_empty() && rejects.is_empty() {
        return Ok(());
    }
    let mut vars = Variables::default();
    let act_vars = vars.add(
        "a",
        json_arrays(rows.activity.iter().map(activity_json), PACKET_BUDGET)?,
    );
    let llm_vars = vars.add(
        "l",
        json_arrays(rows.llm.iter().map(llm_json), PACKET_BUDGET)?,
    );
    let rej_vars = vars.add(
        "r",
        json_arrays(rejects.iter().map(reject_json), PACKET_BUDGET)?,
    );
    let now = super::now_text();
    vars.set.push(("@sf_now".into(), now));
    vars.send(tx, result).await?;

    // Step 3: stage, then read under lock.
    let mut reads = Vec::new();
    let act_select = (!rows.activity.is_empty()).then(|| {
        stage_then_lock(
            &mut reads,
            "stage_activity",
            ACTIVITY_COLUMNS,
            "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.g, j.u, j.d, j.h, j.t",
            ACTIVITY_TABLE,
            &act_vars,
            sql::existing("activity_ledger", "stage_activity", Flavor::MySql.int()),
        )
    });
    let llm_select = (!rows.llm.is_empty()).then(|| {
        stage_then_lock(
            &mut reads,
            "stage_llm",
            LLM_COLUMNS,
            "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.u, j.c, j.p, j.m, j.f, j.pt, j.rt,
             j.tt, j.cu, j.ms, j.q, j.t",
            LLM_TABLE,
            &llm_vars,
            super::queries::existing_llm(Flavor::MySql, "SELECT id FROM stage_llm"),
        )
    });
    let mut read = multi(tx, &reads, result).await?;
    let mut take = |at: Option<usize>| {
        at.map(|i| std::mem::take(&mut read[i].rows))
            .unwrap_or_default()
    };
    let act_found = take(act_select);
    let llm_found = take(llm_select);

    // Judge, and compute the report deltas from what the lock read.
    let mut writes = Vec::new();
    let mut checked = Vec::new();
    if !rows.activity.is_empty() {
        let found = super::rows::existing(&act_found, "ledger")?;
        let expected_new = super::judge(
            rows.activity.iter().map(|r| (r.id, &r.version, r.state)),
            &found,
            &mut result.unchanged,
        );
        writes.push(activity_delta());
        ledger_writes(
            &mut writes,
            &mut checked,
            "activity_ledger",
            "stage_activity",
            ACTIVITY_COLUMNS,
            found.len(),
            expected_new,
        );
    }
    let mut report_vars = Variables::default();
    if !rows.llm.is_empty() {
        let found = llm_found
            .iter()
            .map(super::rows::llm_row)
            .collect::<Result<Vec<_>, _>>()?;
        let (found, contributions) = super::rows::llm_existing(&found);
        let expected_new = super::judge(
            rows.llm.iter().map(|r| (r.id, &r.version, r.state)),
            &found,
            &mut result.unchanged,
        );
        let deltas = crate::aggregate::llm_rollup::report_deltas(&rows.llm, &contributions)?;
        ledger_writes(
            &mut writes,
            &mut checked,
            "llm_ledger",
            "stage_llm",
            LLM_COLUMNS,
            found.len(),
            expected_new,
        );
        if !deltas.is_empty() {
            report_writes(&mut writes, &mut report_vars, &deltas)?;
            result.reports_changed += deltas.len();
        }
    }
    for v in &rej_vars {
        writes.push(reject_insert(v));
    }
    writes.extend(vars.release());
    writes.extend(report_vars.release());

    // Steps 4 and 5.
    report_vars.send(tx, result).await?;
    let done = multi(tx, &writes, result).await?;
    for (index, expected) in checked {
        let inserted = done[index].rows_affected;
        if inserted != expected {
            return Err(StoreError::Conflict { inserted, expected });
        }
    }
    Ok(())
}

/// Clear `stage`, fill it from each document variable in `vars`, then read
/// the staged identities' ledger rows `FOR UPDATE` (`locked_read`, in id
/// order); returns the read's position in `reads`.
fn stage_then_lock(
    reads: &mut Vec<String>,
    stage: &str,
    columns: &str,
    select: &str,
    json_columns: &str,
    vars: &[String],
    locked_read: String,
) -> usize {
    reads.push(format!("DELETE FROM {stage}"));
    reads.extend(
        vars.iter()
            .map(|v| fill(stage, columns, select, json_columns, v)),
    );
    reads.push(format!("{locked_read} FOR UPDATE"));
    reads.len() - 1
}

/// The ledger's UPDATE (if rows exist) and INSERT (if identities are new);
/// records the INSERT's position and expected row count in `checked`.
fn ledger_writes(
    writes: &mut Vec<String>,
    checked: &mut Vec<(usize, u64)>,
    ledger: &str,
    stage: &str,
    columns: &str,
    existing: usize,
    expected_new: u64,
) {
    if existing > 0 {
        writes.push(ledger_update(ledger, stage, columns));
    }
    if expected_new > 0 {
        checked.push((writes.len(), expected_new));
        writes.push(sql::insert_new(ledger, stage, columns));
    }
}
