//! `contacts`: the user's entries in @mention contact lists (organization, folder, document) are
//! removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Contacts;

impl Deleter for Contacts {
    fn kind(&self) -> TaskKind {
        TaskKind::Contacts
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::Contact(c) if c.user_id == user.as_str() => Effect::Remove,
            _ => Effect::Keep,
        }
    }
}
