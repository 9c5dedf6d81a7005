//! forgetlab-eval
