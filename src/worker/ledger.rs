//! A task's ledger: the erasure engine's pages opened and closed on the task's item, and its
//! contested entities claimed in receipts, under the run's lease; and the recovery of the pages
//! a run that died left open (DESIGN §3, "Exact counts").

use std::sync::atomic::{AtomicU32, Ordering};

use crate::clock::now_ms;
use crate::control::{ControlStore, TaskLease};
use crate::domain::entity::Key;
use crate::domain::ids::JobId;
use crate::domain::task::Outcome;
use crate::erase::{Intent, Ledger, Scope};
use crate::store::{DataStore, StoreError};

/// The ledger of one run of a task: its pages are numbered from 1 under its lease.
pub struct TaskLedger<'a> {
    control: &'a ControlStore,
    job_id: &'a JobId,
    lease: &'a TaskLease,
    /// When the receipts its claims write expire: with the job.
    expires_at_s: i64,
    pages: AtomicU32,
}

impl<'a> TaskLedger<'a> {
    /// The ledger of a run holding `lease` on a task of job `job_id`, whose receipts expire
    /// with the job (`expires_at_s`).
    pub fn new(
        control: &'a ControlStore,
        job_id: &'a JobId,
        lease: &'a TaskLease,
        expires_at_s: i64,
    ) -> Self {
        Self {
            control,
            job_id,
            lease,
            expires_at_s,
            pages: AtomicU32::new(0),
        }
    }
}

impl TaskLedger<'_> {
    /// The lease the run holds.
    pub(super) fn lease(&self) -> &TaskLease {
        self.lease
    }
}

impl Ledger for TaskLedger<'_> {
    async fn open(&self, intent: Intent) -> Result<u32, StoreError> {
        let page = self.pages.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = self
            .control
            .open_page(self.job_id, self.lease, page, &intent)
            .await?;
        still_held(opened)?;
        Ok(page)
    }

    async fn claim(&self, page: u32, group: &str, keys: &[Key]) -> Result<u64, StoreError> {
        let claimant = self.lease.page_name(page);
        let now_s = now_ms() / 1000;
        Ok(self
            .control
            .claim_receipts(group, keys, &claimant, now_s, self.expires_at_s)
            .await?)
    }

    async fn close(&self, page: u32, done: Outcome) -> Result<(), StoreError> {
        let names = [self.lease.page_name(page)];
        let closed = self
            .control
            .close_pages(self.job_id, self.lease, &names, done)
            .await?;
        still_held(closed)
    }
}

/// `LeaseLost` when a page's update was refused because the run no longer holds its lease.
fn still_held(applied: bool) -> Result<(), StoreError> {
    match applied {
        true => Ok(()),
        false => Err(StoreError::LeaseLost),
    }
}

/// Counts the pages that a run which held the task before `lease` left open (it died before
/// closing them) from what is left — its batched removals and rewrites from the data, its
/// contested removals from its receipts — and closes them with that count, in one update.
/// Returns what they had done.
pub(super) async fn recover_inherited(
    control: &ControlStore,
    data: &DataStore,
    job_id: &JobId,
    lease: &TaskLease,
    scope: Scope<'_>,
) -> Result<Outcome, StoreError> {
    let mut done = Outcome::default();
    for page in &lease.inherited {
        done += data
            .recover(scope.tenant, scope.user, scope.deleter, &page.intent)
            .await?;
        for group in &page.intent.groups {
            done.removed += control.claimed_receipts(group, &page.name).await?;
        }
    }
    let names: Vec<String> = lease.inherited.iter().map(|p| p.name.clone()).collect();
    still_held(control.close_pages(job_id, lease, &names, done).await?)?;
    Ok(done)
}
