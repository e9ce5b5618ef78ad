//! streamfold integration tests: real records through `run_batch` into real
//! databases, and the `streamfold` binary on the fixtures.
//!
//! Tests that need a server (MySQL, PostgreSQL) or moto are
//! `#[ignore = "needs VARIABLE"]`: `cargo test` lists them as ignored, not
//! as passed; `cargo test -- --include-ignored` with the variables set runs
//! them (README, "Try it"), and a variable unset or its server unreachable
//! then fails them.

mod audit;
mod backfill;
mod backfill_rejects;
mod bad_input;
mod bin;
mod catch_up;
mod cli;
mod compaction;
mod dashboard;
mod dropbox_identity;
mod export_hostile;
mod export_prefix;
mod faults;
mod heatmap_png;
mod ignored;
mod infra_template;
mod kinesis;
mod lambda;
mod llm_exact;
mod llm_reports;
mod load;
mod moto;
mod moto_tables;
mod observability;
mod odd_values;
mod operator;
mod properties;
mod redaction;
mod rejects;
mod safety_net;
mod scenarios;
mod scripting;
mod sdk_tls;
mod secrets;
mod support;
mod tail;
mod terminal;
mod tls;
mod versions;

mod sqlite {
    crate::scenario_tests!("sqlite");
    crate::audit_tests!("sqlite");
    crate::load_tests!("sqlite");
    crate::llm_report_tests!("sqlite");
    crate::backfill_tests!("sqlite");
    crate::llm_exact_tests!("sqlite");
    crate::odd_value_tests!("sqlite");
    crate::safety_net_tests!("sqlite");
    crate::dropbox_identity_tests!("sqlite");
    crate::compaction_tests!("sqlite");
    crate::version_tests!("sqlite");
}

mod mysql {
    crate::scenario_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::audit_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::load_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::llm_report_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::backfill_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::llm_exact_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::odd_value_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::safety_net_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::dropbox_identity_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::compaction_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
    crate::version_tests!("mysql", #[ignore = "needs STREAMFOLD_TEST_MYSQL_URL"]);
}

mod postgres {
    crate::scenario_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::audit_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::load_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::llm_report_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::backfill_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::llm_exact_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::odd_value_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::safety_net_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::dropbox_identity_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::compaction_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
    crate::version_tests!("postgres", #[ignore = "needs STREAMFOLD_TEST_POSTGRES_URL"]);
}
