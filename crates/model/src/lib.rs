//! forgetlab-model
