//! `mentions`: comments by others that tag the user stay; the user leaves their `to` and
//! `taggedUserContacts`, and their token in the text becomes a neutral placeholder.

use super::{Deleter, Effect};
use crate::domain::entity::Entity;
use crate::domain::mention::without_mention;
use crate::domain::{ids::UserId, task::TaskKind};

pub struct Mentions;

impl Deleter for Mentions {
    fn kind(&self) -> TaskKind {
        TaskKind::Mentions
    }

    fn effect(&self, entity: &Entity, user: &UserId) -> Effect {
        let Entity::Comment(comment) = entity else {
            return Effect::Keep;
        };
        let user = user.as_str();
        let mut rewritten = comment.clone();
        rewritten.to.retain(|u| u != user);
        rewritten.tagged_user_contacts.retain(|t| t.user_id != user);
        rewritten.text = without_mention(&comment.text, user);
        if rewritten == *comment {
            Effect::Keep
        } else {
            Effect::Rewrite(Entity::Comment(rewritten))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entity::{Comment, TaggedContact};
    use crate::domain::mention::MENTION_PLACEHOLDER;

    fn comment() -> Comment {
        Comment {
            organization_id: "o".into(),
            document_id: "d".into(),
            annotation_id: "a".into(),
            comment_id: "c".into(),
            from: "author".into(),
            text: "{{u1}} and {{u10}}, see {{u1}}".into(),
            to: vec!["u1".into(), "u10".into()],
            tagged_user_contacts: vec![
                TaggedContact {
                    user_id: "u1".into(),
                    name: Some("One".into()),
                    email: Some("one@example.com".into()),
                },
                TaggedContact {
                    user_id: "u10".into(),
                    name: None,
                    email: None,
                },
            ],
        }
    }

    #[test]
    fn a_mention_is_rewritten_out_and_others_stay() {
        let user = UserId::parse("u1").unwrap();
        let Effect::Rewrite(Entity::Comment(c)) =
            Mentions.effect(&Entity::Comment(comment()), &user)
        else {
            panic!("expected a rewrite");
        };
        assert_eq!(c.to, ["u10"]);
        assert_eq!(c.tagged_user_contacts.len(), 1);
        assert_eq!(
            c.text,
            format!("{MENTION_PLACEHOLDER} and {{{{u10}}}}, see {MENTION_PLACEHOLDER}")
        );
        assert_eq!(c.from, "author");
    }

    #[test]
    fn a_comment_that_no_longer_mentions_the_user_is_kept() {
        let user = UserId::parse("someone else").unwrap();
        assert_eq!(
            Mentions.effect(&Entity::Comment(comment()), &user),
            Effect::Keep
        );
    }
}
