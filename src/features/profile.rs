//! `profile`: the user record (name, email, photo URL) is removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Profile;

impl Deleter for Profile {
    fn kind(&self) -> TaskKind {
        TaskKind::Profile
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::Profile(p) if p.user_id == user.as_str() => Effect::Remove,
            _ => Effect::Keep,
        }
    }
}
