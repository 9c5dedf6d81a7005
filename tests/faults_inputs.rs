//! Fault injection: impossible configs, damaged inputs and hostile files under the runs root.
//! Real processes, real files.
