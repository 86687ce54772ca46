//! Webhook delivery: Standard Webhooks signatures (`signature`), the address policy for
//! outgoing requests (`outbound`), and the delivery worker that claims queued deliveries
//! and sends them (`worker`), run by `frontdesk serve` and alone by `frontdesk worker`.

pub mod outbound;
pub mod signature;
pub mod worker;

pub use worker::{Worker, WorkerConfig};
