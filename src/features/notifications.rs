//! `notifications`: notifications to the user and about the user's actions (from them, or naming them in the text) are removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Notifications;

impl Deleter for Notifications {
    fn kind(&self) -> TaskKind {
        TaskKind::Notifications
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        match entity {
            Entity::Notification(n)
                if n.to == user.as_str()
                    || n.from == user.as_str()
                    || crate::domain::mention::mention_tokens(&n.text).contains(&user.as_str()) =>
            {
                Effect::Remove
            }
            _ => Effect::Keep,
        }
    }
}
