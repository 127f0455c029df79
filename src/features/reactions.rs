//! `reactions`: the user's reactions on comments and documents are removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Reactions;

impl Deleter for Reactions {
    fn kind(&self) -> TaskKind {
        TaskKind::Reactions
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::CommentReaction(r) if r.user_id == user.as_str() => Effect::Remove,
            Entity::DocumentReaction(r) if r.user_id == user.as_str() => Effect::Remove,
            _ => Effect::Keep,
        }
    }
}
