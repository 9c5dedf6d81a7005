//! forgetlab-data
