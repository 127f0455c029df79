//! `access`: organization membership, folder and document access, user-group membership are
//! removed.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Access;

impl Deleter for Access {
    fn kind(&self) -> TaskKind {
        TaskKind::Access
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        let holder = match entity {
            Entity::Member(m) => &m.user_id,
            Entity::GroupMember(g) => &g.user_id,
            Entity::FolderAccess(f) => &f.user_id,
            Entity::DocumentAccess(d) => &d.user_id,
            _ => return Effect::Keep,
        };
        if holder == user.as_str() {
            Effect::Remove
        } else {
            Effect::Keep
        }
    }
}
