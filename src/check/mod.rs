//! Checking a history against the consistency model (SPEC §19): whether
//! each key (and each set of keys transactions tie together) is
//! linearizable, and whether the watch streams kept their guarantees. The
//! drill (`hulykvs check`) and the robustness suite record histories; the
//! checkers here judge them, knowing nothing of HTTP.

pub mod history;
pub mod linearizability;
pub mod model;
pub mod partition;
pub mod watch;
