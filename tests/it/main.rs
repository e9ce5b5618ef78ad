//! streamfold integration tests: real records through `run_batch` into real
//! databases, and the `streamfold` binary on the fixtures.

mod audit;
mod backfill;
mod bad_input;
mod bin;
mod catch_up;
mod cli;
mod compaction;
mod dropbox_identity;
mod export_hostile;
mod export_prefix;
mod faults;
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
    crate::scenario_tests!("mysql");
    crate::audit_tests!("mysql");
    crate::load_tests!("mysql");
    crate::llm_report_tests!("mysql");
    crate::backfill_tests!("mysql");
    crate::llm_exact_tests!("mysql");
    crate::odd_value_tests!("mysql");
    crate::safety_net_tests!("mysql");
    crate::dropbox_identity_tests!("mysql");
    crate::compaction_tests!("mysql");
    crate::version_tests!("mysql");
}

mod postgres {
    crate::scenario_tests!("postgres");
    crate::audit_tests!("postgres");
    crate::load_tests!("postgres");
    crate::llm_report_tests!("postgres");
    crate::backfill_tests!("postgres");
    crate::llm_exact_tests!("postgres");
    crate::odd_value_tests!("postgres");
    crate::safety_net_tests!("postgres");
    crate::dropbox_identity_tests!("postgres");
    crate::compaction_tests!("postgres");
    crate::version_tests!("postgres");
}
