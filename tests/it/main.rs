//! Integration tests, one binary with themed modules (see each module's doc).

mod cli;
mod common;
mod corpus;
mod errors;
mod eval;
mod odbc;
mod outputs;
mod pipeline;
mod real_clients;
mod recommend;
mod transforms;
mod update;
