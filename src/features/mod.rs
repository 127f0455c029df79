//! One deleter per feature, behind one trait. A deleter only decides what erasing a user does to
//! an entity that names them; the store's erasure engine finds the entities through the user's
//! reference items and carries the decision out. Adding a feature: one file and one line in
//! [`registry`].

mod access;
mod comments;
mod contacts;
mod mentions;
mod notifications;
mod profile;
mod reactions;
mod recordings;
mod views;

use crate::domain::ids::UserId;
use crate::domain::task::TaskKind;
use crate::store::entity::Entity;

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

/// Every deleter, one per task kind.
pub fn registry() -> &'static [&'static dyn Deleter] {
    &[
        &profile::Profile,
        &access::Access,
        &contacts::Contacts,
        &mentions::Mentions,
        &comments::Comments,
        &reactions::Reactions,
        &notifications::Notifications,
        &recordings::Recordings,
        &views::Views,
    ]
}

/// The deleter of `kind`.
pub fn deleter(kind: TaskKind) -> &'static dyn Deleter {
    *registry()
        .iter()
        .find(|d| d.kind() == kind)
        .expect("every task kind has a deleter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_kind_has_exactly_one_deleter() {
        for kind in TaskKind::ALL {
            assert_eq!(registry().iter().filter(|d| d.kind() == kind).count(), 1);
        }
        assert_eq!(registry().len(), TaskKind::ALL.len());
    }
}
