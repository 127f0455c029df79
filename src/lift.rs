//! Lifting a user's tombstone, so that new data naming them is accepted again (a user erased
//! by mistake, or coming back under the same id). Erased data does not come back: only the
//! refusal of new data ends.
//!
//! Refused while an open job of the tenant names the user: its tasks could erase the new data.
//! A job accepted *during* the lift is caught by looking again after the delete (DESIGN §10):
//! acceptance (`src/accept.rs`) stores the job and its open-jobs entry before it writes the
//! tombstone, so a job whose tombstone the delete removed is already listed by then, and one
//! listed later writes its tombstone after the delete. The steps are types, so none can be skipped: [`Lift::check`],
//! [`Checked::delete`], [`Deleted::confirm`]; [`lift`] runs them in order.
//!
//! Every attempt leaves an audit record in the control table (who, when, why, the user's key
//! hash, how it ended) and a log line with fingerprints only.

use futures::{stream, StreamExt, TryStreamExt};

use crate::control::{ControlStore, JobView, LiftAudit, LiftOutcome, LIFT_ACTION};
use crate::domain::ids::UserId;
use crate::domain::tenant::Tenant;
use crate::dynamo::DynamoError;
use crate::keys::{component, fingerprint};
use crate::store::{DataStore, StoreError, Tombstone};

/// Jobs read at once while looking for the ones that name the user.
const READ_CONCURRENCY: usize = 16;

/// Why a lift did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    #[error("the reason names the user: say why without their id")]
    ReasonNamesUser,
    #[error("refused: open job(s) {} name this user; lift once they have settled", .0.join(" "))]
    Held(Vec<String>),
    #[error("refused: job(s) {} naming this user were accepted during the lift; the tombstone was put back", .0.join(" "))]
    AcceptedDuringLift(Vec<String>),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the operator asks.
#[derive(Debug, Clone)]
pub struct LiftRequest {
    pub tenant: Tenant,
    pub user: UserId,
    pub operator: String,
    pub reason: Option<String>,
}

/// A lift about to look for jobs that hold the tombstone.
pub struct Lift<'a> {
    control: &'a ControlStore,
    data: &'a DataStore,
    request: LiftRequest,
    audit: LiftAudit,
}

/// No open job named the user when the lift looked: the tombstone may go.
pub struct Checked<'a>(Lift<'a>);

/// The tombstone is deleted (`None`: there was none); the lift must look again.
pub struct Deleted<'a> {
    lift: Lift<'a>,
    tombstone: Option<Tombstone>,
}

/// Lifts the tombstone: check, delete, confirm.
pub async fn lift(
    control: &ControlStore,
    data: &DataStore,
    request: LiftRequest,
    now_ms: i64,
) -> Result<LiftOutcome, LiftError> {
    Lift::check(control, data, request, now_ms)
        .await?
        .delete()
        .await?
        .confirm()
        .await
}

impl<'a> Lift<'a> {
    /// Refuses if an open job names the user; else records that the lift has started.
    pub async fn check(
        control: &'a ControlStore,
        data: &'a DataStore,
        request: LiftRequest,
        now_ms: i64,
    ) -> Result<Checked<'a>, LiftError> {
        if request
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains(request.user.as_str()))
        {
            return Err(LiftError::ReasonNamesUser);
        }
        let audit = LiftAudit {
            action: LIFT_ACTION.to_owned(),
            tenant: request.tenant.as_str().to_owned(),
            user_hash: component(request.user.as_str()),
            operator: request.operator.clone(),
            reason: request.reason.clone(),
            at: now_ms,
            outcome: LiftOutcome::Started,
            jobs: Vec::new(),
        };
        let mut lift = Lift {
            control,
            data,
            request,
            audit,
        };
        let holders = ids(&lift.open_jobs_naming_the_user().await?);
        if !holders.is_empty() {
            lift.record(LiftOutcome::Refused, &holders).await?;
            return Err(LiftError::Held(holders));
        }
        lift.record(LiftOutcome::Started, &[]).await?;
        Ok(Checked(lift))
    }

    /// The tenant's open jobs that name the user, read consistently.
    async fn open_jobs_naming_the_user(&self) -> Result<Vec<JobView>, DynamoError> {
        let entries = self.control.open_jobs().await?;
        let jobs: Vec<Option<JobView>> = stream::iter(entries)
            .map(|entry| async move { self.control.get_job(&entry.job_id).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(jobs
            .into_iter()
            .flatten()
            .filter(|job| {
                !job.is_settled()
                    && job.belongs_to(&self.request.tenant)
                    && job.user_hashes.contains(&self.audit.user_hash)
            })
            .collect())
    }

    /// Stores the audit record in its new state and logs it (fingerprints only).
    async fn record(&mut self, outcome: LiftOutcome, jobs: &[String]) -> Result<(), DynamoError> {
        self.audit.outcome = outcome;
        self.audit.jobs = jobs.to_vec();
        self.control.put_lift_audit(&self.audit).await?;
        tracing::info!(
            tenant = %fingerprint(self.request.tenant.as_str()),
            user = %fingerprint(self.request.user.as_str()),
            operator = %self.request.operator,
            outcome = ?outcome,
            jobs = %jobs.join(" "),
            "tombstone lift"
        );
        Ok(())
    }
}

fn ids(jobs: &[JobView]) -> Vec<String> {
    jobs.iter().map(|job| job.job_id.to_string()).collect()
}

impl<'a> Checked<'a> {
    /// Deletes the tombstone, keeping what it covered in case it must be put back.
    pub async fn delete(self) -> Result<Deleted<'a>, LiftError> {
        let lift = self.0;
        let tombstone = lift
            .data
            .lift_tombstone(&lift.request.tenant, &lift.request.user)
            .await?;
        Ok(Deleted { lift, tombstone })
    }
}

impl Deleted<'_> {
    /// Looks again: a job naming the user accepted since the check may have had its tombstone
    /// deleted; then the tombstone is put back (merged with the jobs' scopes) and the lift
    /// refused. Else the lift stands.
    pub async fn confirm(self) -> Result<LiftOutcome, LiftError> {
        let Deleted {
            mut lift,
            tombstone,
        } = self;
        let racing = lift.open_jobs_naming_the_user().await?;
        if racing.is_empty() {
            let outcome = match tombstone {
                Some(_) => LiftOutcome::Lifted,
                None => LiftOutcome::Absent,
            };
            lift.record(outcome, &[]).await?;
            return Ok(outcome);
        }
        let (tenant, user) = (&lift.request.tenant, &lift.request.user);
        if let Some(tombstone) = &tombstone {
            lift.data.restore_tombstone(tenant, user, tombstone).await?;
        }
        for job in &racing {
            lift.data
                .mark_erased(
                    tenant,
                    std::slice::from_ref(user),
                    &job.organization_ids,
                    &job.job_id,
                    job.created_at,
                )
                .await?;
        }
        let racing = ids(&racing);
        lift.record(LiftOutcome::Restored, &racing).await?;
        Err(LiftError::AcceptedDuringLift(racing))
    }
}
