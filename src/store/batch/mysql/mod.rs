//! MySQL's and MariaDB's batch in four round trips whatever its size:
//!
//! 1. `SET` of the batch's identities, as JSON arrays of base64, to session
//!    variables (one prepared statement);
//! 2. `START TRANSACTION`, then both ledgers' rows of those identities read
//!    `FOR UPDATE`, driven by `JSON_TABLE` into the primary key in identity
//!    order (one multi-statement text query);
//! 3. `SET` of the plan's documents: new and replaced ledger rows, count
//!    moves, report moves, quarantined records (one prepared statement, or
//!    more only when they exceed `PACKET_BUDGET`);
//! 4. the writes, each an `INSERT … SELECT … FROM JSON_TABLE(@var)`, the
//!    variables released, and `COMMIT` (one multi-statement text query).
//!
//! Every value travels bound (documents are parameters of the `SET`s);
//! the text queries only name variables. The transaction is opened and
//! committed inside those text queries, not by the driver, so `MyTx`
//! guards the connection: after a failure it is rolled back, and a
//! connection dropped with a transaction open (the future cancelled) is
//! closed instead of returned to the pool, which rolls back on the server.
//! New rows use plain INSERTs: a concurrent writer that inserted one first
//! makes this one fail on the key (1062, transient: the batch is retried).
//! `JSON_TABLE` needs MariaDB ≥ 10.6 or MySQL ≥ 8.0.4.

mod documents;
mod statements;

use super::super::mysql::MySqlStore;
use super::super::sql::{ACTIVITY_COLUMNS, LLM_COLUMNS};
use super::super::{ApplyResult, RejectedRecord, StoreError};
use super::read::{activity_select, decode_into, llm_select};
use super::{BatchEngine, Plan};
use crate::aggregate::StagedRows;
use crate::aggregate::plan::LedgerRead;
use crate::store::dialect::Flavor;
use documents::{activity_json, count_json, id_json, json_arrays, llm_json, reject_json};
use futures::TryStreamExt;
use sqlx::mysql::{MySql, MySqlConnection, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{Either, Executor};
use statements::{
    ACTIVITY_TABLE, LLM_TABLE, count_upsert, fill, reject_insert, report_writes, upsert_suffix,
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
        conn: &mut MySqlConnection,
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let mut group: Vec<&(String, String)> = Vec::new();
        let mut bytes = 0;
        for (i, var) in self.set.iter().enumerate() {
            bytes += var.1.len();
            group.push(var);
            let next = self.set.get(i + 1).map_or(usize::MAX, |v| v.1.len());
            if bytes.saturating_add(next) > PACKET_BUDGET {
                send_set(conn, &group, result).await?;
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
    conn: &mut MySqlConnection,
    group: &[&(String, String)],
    result: &mut ApplyResult,
) -> Result<(), StoreError> {
    let names: Vec<String> = group.iter().map(|(n, _)| format!("{n} = ?")).collect();
    let text = format!("SET {}", names.join(", "));
    let mut q = sqlx::query(&text);
    for (_, doc) in group {
        q = q.bind(doc.as_str());
    }
    q.execute(&mut *conn).await?;
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
    conn: &mut MySqlConnection,
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
        let mut stream = conn.fetch_many(text.as_str());
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

/// A batch's connection and where its transaction stands.
pub(crate) struct MyTx {
    conn: PoolConnection<MySql>,
    /// A transaction is open on the server.
    open: bool,
}

impl Drop for MyTx {
    fn drop(&mut self) {
        if self.open {
            // Cancelled mid-transaction: never hand it to the next batch.
            self.conn.close_on_drop();
        }
    }
}

/// The ledger rows of the identities in `var`, locked, in identity order.
fn locked_read(select: String, var: &str) -> String {
    format!("{select} ORDER BY l.id FOR UPDATE").replace("@ids", var)
}

fn ids_join(ledger: &str) -> String {
    format!(
        "JSON_TABLE(@ids, '$[*]' COLUMNS (i VARCHAR(32) PATH '$')) AS j
         STRAIGHT_JOIN {ledger} l ON l.id = FROM_BASE64(j.i)"
    )
}

impl BatchEngine for MySqlStore {
    type Tx = MyTx;

    /// Only a connection: the transaction begins with the read.
    async fn begin(&self, _result: &mut ApplyResult) -> Result<MyTx, StoreError> {
        Ok(MyTx {
            conn: self.pool().acquire().await?,
            open: false,
        })
    }

    async fn lock_read(
        tx: &mut MyTx,
        rows: &StagedRows,
        result: &mut ApplyResult,
    ) -> Result<LedgerRead, StoreError> {
        let mut vars = Variables::default();
        let act = vars.add(
            "ai",
            json_arrays(rows.activity.iter().map(|r| id_json(r.id)), usize::MAX)?,
        );
        let llm = vars.add(
            "li",
            json_arrays(rows.llm.iter().map(|r| id_json(r.id)), usize::MAX)?,
        );
        vars.send(&mut tx.conn, result).await?;
        let mut statements = vec!["START TRANSACTION".to_string()];
        for v in &act {
            statements.push(locked_read(
                activity_select(Flavor::MySql, &ids_join("activity_ledger")),
                v,
            ));
        }
        for v in &llm {
            statements.push(locked_read(
                llm_select(Flavor::MySql, &ids_join("llm_ledger")),
                v,
            ));
        }
        statements.extend(vars.release());
        tx.open = true;
        let outcomes = multi(&mut tx.conn, &statements, result).await?;
        let mut read = LedgerRead::default();
        for o in &outcomes {
            decode_into(&o.rows, &mut read)?;
        }
        Ok(read)
    }

    async fn write_plan(
        tx: &mut MyTx,
        plan: &Plan<'_>,
        rejects: &[RejectedRecord],
        result: &mut ApplyResult,
    ) -> Result<(), StoreError> {
        let mut vars = Variables::default();
        let mut writes = Vec::new();
        if !tx.open {
            // A batch of rejected records only: nothing was read.
            writes.push("START TRANSACTION".to_string());
        }
        // The positions of the INSERTs of new rows.
        let mut checked = Vec::new();
        let act_select = "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.g, j.u, j.d, j.h, j.t";
        let llm_select =
            "FROM_BASE64(j.i), FROM_BASE64(j.v), j.s, j.u, j.c, j.p, j.m, j.f, j.pt, j.rt,
             j.tt, j.cu, j.ms, j.q, j.t";
        let docs = json_arrays(
            plan.activity_new.iter().map(|r| activity_json(r)),
            PACKET_BUDGET,
        )?;
        for v in vars.add("an", docs) {
            checked.push(writes.len());
            writes.push(fill(
                "activity_ledger",
                ACTIVITY_COLUMNS,
                act_select,
                ACTIVITY_TABLE,
                &v,
            ));
        }
        let docs = json_arrays(
            plan.activity_replaced.iter().map(|r| activity_json(r)),
            PACKET_BUDGET,
        )?;
        for v in vars.add("ar", docs) {
            writes.push(
                fill(
                    "activity_ledger",
                    ACTIVITY_COLUMNS,
                    act_select,
                    ACTIVITY_TABLE,
                    &v,
                ) + &upsert_suffix(ACTIVITY_COLUMNS),
            );
        }
        let docs = json_arrays(
            plan.counts.iter().map(|(c, d)| count_json(c, *d)),
            PACKET_BUDGET,
        )?;
        for v in vars.add("c", docs) {
            writes.push(count_upsert(&v));
        }
        let docs = json_arrays(plan.llm_new.iter().map(|r| llm_json(r)), PACKET_BUDGET)?;
        for v in vars.add("ln", docs) {
            checked.push(writes.len());
            writes.push(fill("llm_ledger", LLM_COLUMNS, llm_select, LLM_TABLE, &v));
        }
        let docs = json_arrays(plan.llm_replaced.iter().map(|r| llm_json(r)), PACKET_BUDGET)?;
        for v in vars.add("lr", docs) {
            writes.push(
                fill("llm_ledger", LLM_COLUMNS, llm_select, LLM_TABLE, &v)
                    + &upsert_suffix(LLM_COLUMNS),
            );
        }
        if !plan.reports.is_empty() {
            report_writes(&mut writes, &mut vars, &plan.reports)?;
        }
        for v in vars.add(
            "r",
            json_arrays(rejects.iter().map(reject_json), PACKET_BUDGET)?,
        ) {
            writes.push(reject_insert(&v));
        }
        vars.set.push(("@sf_now".into(), super::super::now_text()));
        writes.extend(vars.release());
        writes.push("COMMIT".to_string());
        vars.send(&mut tx.conn, result).await?;
        tx.open = true;
        let done = multi(&mut tx.conn, &writes, result).await?;
        tx.open = false;
        let planned = plan.activity_new.len() + plan.llm_new.len();
        let inserted: u64 = checked.iter().map(|&i| done[i].rows_affected).sum();
        if inserted != planned as u64 {
            // Committed already: a count off here is a bug to report, not
            // to retry (the writes cannot have inserted fewer rows without
            // failing).
            return Err(StoreError::Protocol(format!(
                "the batch inserted {inserted} ledger rows, planned {planned}"
            )));
        }
        Ok(())
    }

    async fn commit(mut tx: MyTx, result: &mut ApplyResult) -> Result<(), StoreError> {
        if tx.open {
            tx.conn.execute("COMMIT").await?;
            tx.open = false;
            result.statements += 1;
        }
        Ok(())
    }

    async fn rollback(mut tx: MyTx) {
        if tx.open && tx.conn.execute("ROLLBACK").await.is_ok() {
            tx.open = false;
        }
    }
}
