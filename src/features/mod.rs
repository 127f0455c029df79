//! One deleter per feature, behind one trait. A deleter only decides what erasing a user does to
//! an entity that names them; the store's erasure engine finds the entities through the user's
//! reference items and carries the decision out. Adding a feature: a line in `task_kinds!`
//! (`domain::task`), a file here, and its arm in [`deleter`], which the compiler asks for.

mod access;
mod comments;
mod contacts;
mod mentions;
mod notifications;
mod profile;
mod reactions;
mod recordings;
mod views;

use crate::domain::entity::Entity;
use crate::domain::ids::UserId;
use crate::domain::task::TaskKind;

/// What erasing a user does to one entity that names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The entity goes, with the entities under it.
    Remove,
    /// The entity stays, rewritten without the user.
    Rewrite(Entity),
    /// Nothing of the user is in the entity (any more): only the reference goes.
    Keep,
}

/// A feature's deleter.
pub trait Deleter: Send + Sync {
    fn kind(&self) -> TaskKind;

    /// What erasing `user` does to `entity`, one the user's references of this kind lead to.
    fn effect(&self, entity: &Entity, user: &UserId) -> Effect;
}

/// The deleter of `kind`. The match is exhaustive: a new kind does not compile without one.
pub fn deleter(kind: TaskKind) -> &'static dyn Deleter {
    match kind {
        TaskKind::Profile => &profile::Profile,
        TaskKind::Access => &access::Access,
        TaskKind::Contacts => &contacts::Contacts,
        TaskKind::Mentions => &mentions::Mentions,
        TaskKind::Comments => &comments::Comments,
        TaskKind::Reactions => &reactions::Reactions,
        TaskKind::Notifications => &notifications::Notifications,
        TaskKind::Recordings => &recordings::Recordings,
        TaskKind::Views => &views::Views,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_kind_has_the_deleter_of_its_own_kind() {
        for kind in TaskKind::ALL {
            assert_eq!(deleter(kind).kind(), kind);
        }
    }
}
