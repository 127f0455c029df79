//! Tasks: one per (user, feature kind), the unit the worker runs and the job counts.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{JobId, UserId};

/// A feature of the data store; one task erases one feature of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Profile,
    Access,
    Contacts,
    Mentions,
    Comments,
    Reactions,
    Notifications,
    Recordings,
    Views,
}

impl TaskKind {
    /// Every kind, in the order tasks are made.
    pub const ALL: [TaskKind; 9] = [
        TaskKind::Access,
        TaskKind::Profile,
        TaskKind::Contacts,
        TaskKind::Mentions,
        TaskKind::Comments,
        TaskKind::Reactions,
        TaskKind::Notifications,
        TaskKind::Recordings,
        TaskKind::Views,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Profile => "profile",
            TaskKind::Access => "access",
            TaskKind::Contacts => "contacts",
            TaskKind::Mentions => "mentions",
            TaskKind::Comments => "comments",
            TaskKind::Reactions => "reactions",
            TaskKind::Notifications => "notifications",
            TaskKind::Recordings => "recordings",
            TaskKind::Views => "views",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// Whether the kind's data lives inside organizations. The user record (`profile`) does
    /// not, so a job scoped to organizations leaves it alone and makes no task for it.
    pub fn is_organization_scoped(self) -> bool {
        self != TaskKind::Profile
    }

    /// The kinds a job makes tasks for: all of them, or, when scoped to organizations, those
    /// whose data lives inside organizations.
    pub fn for_scope(scoped_to_organizations: bool) -> impl Iterator<Item = TaskKind> {
        Self::ALL
            .into_iter()
            .filter(move |k| !scoped_to_organizations || k.is_organization_scoped())
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's id inside its job: `t{user index}.{kind}`. It names the user by position in the
/// job's (deduplicated) user list, so the job record never holds a raw user id.
pub fn task_id(user_index: usize, kind: TaskKind) -> String {
    format!("t{user_index}.{kind}")
}

/// The message the queue carries: everything a worker needs besides the job record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Task {
    pub job_id: JobId,
    pub task_id: String,
    pub user_id: UserId,
    pub kind: TaskKind,
}

/// The tasks of a job over `users` (already deduplicated), in a stable order: a retry rebuilds
/// exactly the same list.
pub fn plan_tasks(job_id: &JobId, users: &[UserId], scoped_to_organizations: bool) -> Vec<Task> {
    users
        .iter()
        .enumerate()
        .flat_map(|(index, user)| {
            TaskKind::for_scope(scoped_to_organizations).map(move |kind| Task {
                job_id: job_id.clone(),
                task_id: task_id(index, kind),
                user_id: user.clone(),
                kind,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unscoped_job_has_nine_tasks_per_user() {
        let users = [UserId::parse("a").unwrap(), UserId::parse("b").unwrap()];
        let tasks = plan_tasks(&JobId::generate(), &users, false);
        assert_eq!(tasks.len(), 18);
        assert_eq!(tasks[0].task_id, "t0.access");
        assert_eq!(tasks[9].user_id, users[1]);
    }

    #[test]
    fn a_scoped_job_makes_no_profile_task() {
        let users = [UserId::parse("a").unwrap()];
        let tasks = plan_tasks(&JobId::generate(), &users, true);
        assert_eq!(tasks.len(), 8);
        assert!(tasks.iter().all(|t| t.kind != TaskKind::Profile));
    }

    #[test]
    fn task_messages_round_trip_and_refuse_unknown_kinds() {
        let task =
            plan_tasks(&JobId::generate(), &[UserId::parse("u#1").unwrap()], false).remove(0);
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), task);
        let bad = json.replace("access", "everything");
        assert!(serde_json::from_str::<Task>(&bad).is_err());
    }
}
