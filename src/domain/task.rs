//! Tasks: one per (user, feature kind), the unit the worker runs and the job counts.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{JobId, UserId};

/// Declares the task kinds once: the enum, its names and [`TaskKind::ALL`] in task order. A new
/// feature is one line here; the compiler then asks for its deleter (`features::deleter`).
macro_rules! task_kinds {
    ($($kind:ident => $name:literal),+ $(,)?) => {
        /// A feature of the data store; one task erases one feature of one user.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum TaskKind {
            $($kind),+
        }

        impl TaskKind {
            /// Every kind, in the order tasks are made.
            pub const ALL: [TaskKind; [$($name),+].len()] = [$(TaskKind::$kind),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(TaskKind::$kind => $name),+
                }
            }
        }
    };
}

// Access first: cutting the user off matters most if a job is interrupted.
task_kinds! {
    Access => "access",
    Profile => "profile",
    Contacts => "contacts",
    Mentions => "mentions",
    Comments => "comments",
    Reactions => "reactions",
    Notifications => "notifications",
    Recordings => "recordings",
    Views => "views",
}

impl TaskKind {
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

/// The user index and kind a task id names; `None` for anything [`task_id`] does not make.
pub fn parse_task_id(id: &str) -> Option<(usize, TaskKind)> {
    let (index, kind) = id.strip_prefix('t')?.split_once('.')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((index.parse().ok()?, TaskKind::parse(kind)?))
}

/// One task: one feature of one user in one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub job_id: JobId,
    pub task_id: String,
    pub user_id: UserId,
    pub kind: TaskKind,
    /// Where in the job's scope (the index of an organization) the task goes on: 0 for a new
    /// task, further on for the continuation of a task paused at an invocation's deadline.
    pub resume_at: usize,
}

impl Task {
    /// The same task, to go on from `position` of its scope.
    pub fn continued_at(&self, position: usize) -> Task {
        Task {
            resume_at: position,
            ..self.clone()
        }
    }
}

/// A task inside a [`TaskMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskEntry {
    pub task_id: String,
    pub kind: TaskKind,
    #[serde(default, skip_serializing_if = "is_start")]
    pub resume_at: usize,
}

fn is_start(position: &usize) -> bool {
    *position == 0
}

/// What the queue carries: the tasks of one user in one job, so a job of 100 users is 100
/// messages (10 SendMessageBatch calls), not 900. The worker runs a message's tasks
/// concurrently; a retry of the message skips the tasks the job already counts as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskMessage {
    pub job_id: JobId,
    pub user_id: UserId,
    pub tasks: Vec<TaskEntry>,
}

impl TaskMessage {
    /// Groups tasks into messages, one per (job, user), keeping their order.
    pub fn group(tasks: &[Task]) -> Vec<TaskMessage> {
        let mut messages: Vec<TaskMessage> = Vec::new();
        for task in tasks {
            let entry = TaskEntry {
                task_id: task.task_id.clone(),
                kind: task.kind,
                resume_at: task.resume_at,
            };
            match messages
                .iter_mut()
                .find(|m| m.job_id == task.job_id && m.user_id == task.user_id)
            {
                Some(message) => message.tasks.push(entry),
                None => messages.push(TaskMessage {
                    job_id: task.job_id.clone(),
                    user_id: task.user_id.clone(),
                    tasks: vec![entry],
                }),
            }
        }
        messages
    }

    /// The message's tasks.
    pub fn tasks(&self) -> Vec<Task> {
        self.tasks
            .iter()
            .map(|entry| Task {
                job_id: self.job_id.clone(),
                task_id: entry.task_id.clone(),
                user_id: self.user_id.clone(),
                kind: entry.kind,
                resume_at: entry.resume_at,
            })
            .collect()
    }
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
                resume_at: 0,
            })
        })
        .collect()
}

/// What erasing (or previewing) one feature of one user did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub removed: u64,
    pub rewritten: u64,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, other: Self) {
        self.removed += other.removed;
        self.rewritten += other.rewritten;
    }
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
    fn tasks_travel_one_message_per_user_and_come_back_unchanged() {
        let users = [UserId::parse("u#1").unwrap(), UserId::parse("u2").unwrap()];
        let tasks = plan_tasks(&JobId::generate(), &users, false);
        let messages = TaskMessage::group(&tasks);
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|m| m.tasks.len() == 9));
        let back: Vec<Task> = messages
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .flat_map(|j| serde_json::from_str::<TaskMessage>(&j).unwrap().tasks())
            .collect();
        assert_eq!(back, tasks);
    }

    #[test]
    fn a_continuation_carries_where_it_goes_on_and_a_new_task_does_not_mention_it() {
        let tasks = plan_tasks(&JobId::generate(), &[UserId::parse("u").unwrap()], true);
        let fresh = serde_json::to_string(&TaskMessage::group(&tasks[..1])[0]).unwrap();
        assert!(!fresh.contains("resumeAt"), "{fresh}");
        let continued = [tasks[0].continued_at(3)];
        let json = serde_json::to_string(&TaskMessage::group(&continued)[0]).unwrap();
        let back = serde_json::from_str::<TaskMessage>(&json).unwrap().tasks();
        assert_eq!(back[0].resume_at, 3);
        assert_eq!(back[0].task_id, tasks[0].task_id);
    }

    #[test]
    fn a_task_id_reads_back_as_the_user_index_and_kind_it_was_made_from() {
        assert_eq!(
            parse_task_id(&task_id(12, TaskKind::Views)),
            Some((12, TaskKind::Views))
        );
        for bad in [
            "",
            "t",
            "t.views",
            "t1",
            "t1.",
            "t1.everything",
            "x1.views",
            "t+1.views",
        ] {
            assert_eq!(parse_task_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn task_messages_refuse_unknown_kinds_and_fields() {
        let tasks = plan_tasks(&JobId::generate(), &[UserId::parse("u").unwrap()], false);
        let json = serde_json::to_string(&TaskMessage::group(&tasks)[0]).unwrap();
        let bad = json.replace("access", "everything");
        assert!(serde_json::from_str::<TaskMessage>(&bad).is_err());
        let extra = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(serde_json::from_str::<TaskMessage>(&extra).is_err());
    }
}
