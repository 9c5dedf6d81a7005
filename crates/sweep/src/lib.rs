//! forgetlab-sweep
