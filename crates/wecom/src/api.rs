//! The WeCom server API client (being written).
