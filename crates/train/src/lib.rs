//! forgetlab-train
