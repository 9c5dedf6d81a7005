//! Fault injection: damaged checkpoints and changed provenance (tokenizer, data, edited
//! config) at resume and evaluation. Real processes, real files.
