//! forgetlab-dashboard
