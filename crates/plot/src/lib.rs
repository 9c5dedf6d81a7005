//! forgetlab-plot
