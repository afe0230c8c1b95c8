//! The ids the tables are keyed by. They are defined once, in `wecom::ids` (where every id of the
//! protocol lives); the store only stores them (`text` columns, through the `sqlx` feature).

pub use wecom::ids::{CorpId, SuiteId};
