//! Integration tests of the dashboard server and the report, on runs directories generated at
//! test time. One test binary (linking is the slow part of a build here).

mod api;
mod browser;
mod fixture;
mod http;
mod report;
