//! Background jobs. Each one waits on its next tick *or* shutdown, and finishes the batch
//! in hand before it stops.

pub mod abc;
pub mod checkpoint;
pub mod delivery;
pub mod retention;
pub mod scheduler;
pub mod sink;
pub mod sync;
pub mod view_admin;
