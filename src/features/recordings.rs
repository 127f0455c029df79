//! `recordings`: the user's screen, audio and video recording records are removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Recordings;

impl Deleter for Recordings {
    fn kind(&self) -> TaskKind {
        TaskKind::Recordings
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::Recording(r) if r.from == user.as_str() => Effect::Remove,
            _ => Effect::Keep,
        }
    }
}
