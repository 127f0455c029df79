//! `comments`: the user's comments are removed (an annotation left with none goes too, which the
//! store's engine sees to); the user is cleared from `assignedTo`/`resolvedBy` of annotations.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Comments;

impl Deleter for Comments {
    fn kind(&self) -> TaskKind {
        TaskKind::Comments
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        let user = user.as_str();
        match entity {
            Entity::Comment(c) if c.from == user => Effect::Remove,
            Entity::Annotation(a) => {
                let mut rewritten = a.clone();
                if rewritten.assigned_to.as_deref() == Some(user) {
                    rewritten.assigned_to = None;
                }
                if rewritten.resolved_by.as_deref() == Some(user) {
                    rewritten.resolved_by = None;
                }
                if rewritten == *a {
                    Effect::Keep
                } else {
                    Effect::Rewrite(Entity::Annotation(rewritten))
                }
            }
            _ => Effect::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entity::Annotation;

    #[test]
    fn the_user_is_cleared_from_an_annotation_and_others_stay() {
        let annotation = Annotation {
            organization_id: "o".into(),
            document_id: "d".into(),
            annotation_id: "a".into(),
            assigned_to: Some("u1".into()),
            resolved_by: Some("u10".into()),
        };
        let user = UserId::parse("u1").unwrap();
        let Effect::Rewrite(Entity::Annotation(a)) =
            Comments.effect(&Entity::Annotation(annotation), &user)
        else {
            panic!("expected a rewrite");
        };
        assert_eq!(a.assigned_to, None);
        assert_eq!(a.resolved_by.as_deref(), Some("u10"));
    }
}
