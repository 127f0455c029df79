//! `views`: the user's seen-by / viewed-by records are removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Views;

impl Deleter for Views {
    fn kind(&self) -> TaskKind {
        TaskKind::Views
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::View(v) if v.user_id == user.as_str() => Effect::Remove,
            _ => Effect::Keep,
        }
    }
}
