//! Fault injection: concurrent writers of one run directory or experiment, and runs whose
//! process died. Real processes, real files.
