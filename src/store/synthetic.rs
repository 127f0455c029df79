//! A synthetic world of any size, written through the write path: users who each own a given
//! number of entities, next to a background of other users' documents. What `erasure seed
//! --synthetic` loads and what `make bench` measures on.

use futures::{stream, StreamExt, TryStreamExt};

use crate::domain::entity::{
    Annotation, Comment, CommentReaction, Contact, Document, DocumentAccess, DocumentReaction,
    Entity, Member, Notification, Recording, View,
};

use super::{DataStore, StoreError};
use crate::domain::tenant::Tenant;

/// Documents written per `DataStore::write` call.
const DOCUMENTS_PER_WRITE: usize = 100;
/// Write calls in flight at once.
const WRITES_IN_FLIGHT: usize = 8;
/// Comments per annotation of a synthetic user.
const COMMENTS_PER_ANNOTATION: usize = 10;
/// Entities of a background document.
pub const BACKGROUND_PER_DOCUMENT: usize = 12;

/// The shape of a synthetic world inside one tenant and one organization.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub organization: String,
    /// Users `<prefix>-<i>`, each owning `entities_per_user` entities.
    pub users: usize,
    pub user_prefix: String,
    pub entities_per_user: usize,
    /// Other users' entities beside them (rounded up to whole documents of 12).
    pub background: usize,
}

impl Synthetic {
    /// The user ids the world holds.
    pub fn user_ids(&self) -> Vec<String> {
        (0..self.users)
            .map(|i| format!("{}-{i}", self.user_prefix))
            .collect()
    }

    /// Writes the world; `progress` hears how many entities each write stored. Returns the
    /// number of entities written.
    pub async fn seed(
        &self,
        store: &DataStore,
        tenant: &Tenant,
        progress: impl Fn(usize),
    ) -> Result<usize, StoreError> {
        let mut batches: Vec<Vec<Entity>> = Vec::new();
        for user in self.user_ids() {
            batches.extend(user_world(
                &self.organization,
                &user,
                self.entities_per_user,
            ));
        }
        let documents = self.background.div_ceil(BACKGROUND_PER_DOCUMENT);
        let background = (0..documents)
            .collect::<Vec<_>>()
            .chunks(DOCUMENTS_PER_WRITE)
            .map(|chunk| {
                chunk
                    .iter()
                    .flat_map(|&d| background_document(&self.organization, d))
                    .collect()
            })
            .collect::<Vec<_>>();
        batches.extend(background);
        let progress = &progress;
        let written: Vec<usize> = stream::iter(batches)
            .map(|batch| async move {
                let n = batch.len();
                store.write(tenant, batch).await?;
                progress(n);
                Ok::<_, StoreError>(n)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(written.into_iter().sum())
    }
}

/// A user owning `n` entities, in write batches: half document access (one per document), half
/// comments (ten per annotation, so the annotations go too, when the last one goes).
pub fn user_world(organization: &str, user: &str, n: usize) -> Vec<Vec<Entity>> {
    let accesses = n / 2;
    let comments = n - accesses;
    let documents = accesses.max(comments.div_ceil(COMMENTS_PER_ANNOTATION));
    let mut batches = Vec::new();
    for chunk in (0..documents)
        .collect::<Vec<_>>()
        .chunks(DOCUMENTS_PER_WRITE)
    {
        let mut batch = Vec::new();
        for &d in chunk {
            let doc = format!("{user}-doc{d}");
            batch.push(Entity::Document(Document {
                organization_id: organization.into(),
                document_id: doc.clone(),
                folder_id: None,
            }));
            if d < accesses {
                batch.push(access(organization, &doc, user));
            }
            let first = d * COMMENTS_PER_ANNOTATION;
            if first < comments {
                let ann = format!("{user}-ann{d}");
                batch.push(Entity::Annotation(Annotation {
                    organization_id: organization.into(),
                    document_id: doc.clone(),
                    annotation_id: ann.clone(),
                    assigned_to: None,
                    resolved_by: None,
                }));
                for c in first..(first + COMMENTS_PER_ANNOTATION).min(comments) {
                    batch.push(Entity::Comment(Comment {
                        organization_id: organization.into(),
                        document_id: doc.clone(),
                        annotation_id: ann.clone(),
                        comment_id: format!("c{c}"),
                        from: user.into(),
                        text: format!("comment {c}"),
                        to: Vec::new(),
                        tagged_user_contacts: Vec::new(),
                    }));
                }
            }
        }
        batches.push(batch);
    }
    batches
}

/// One document of other users' data: 12 entities, among them a membership that grows the
/// organization's partition. It names only `bg-…` users.
pub fn background_document(organization: &str, d: usize) -> Vec<Entity> {
    let org = organization;
    let doc = format!("bg-doc-{d}");
    let a = format!("bg-user-{}", d % 997);
    // Never the same user as `a`: one document access each.
    let b = format!("bg-user-{}", (d % 997 + 1 + d % 13) % 997);
    let ann = format!("bg-ann-{d}");
    let comment = format!("bg-c-{d}");
    vec![
        Entity::Member(Member {
            organization_id: org.into(),
            user_id: format!("bg-member-{d}"),
            access_role: "editor".into(),
        }),
        Entity::Document(Document {
            organization_id: org.into(),
            document_id: doc.clone(),
            folder_id: None,
        }),
        access(org, &doc, &a),
        access(org, &doc, &b),
        Entity::Contact(Contact {
            organization_id: org.into(),
            folder_id: None,
            document_id: Some(doc.clone()),
            user_id: b.clone(),
        }),
        Entity::Annotation(Annotation {
            organization_id: org.into(),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            assigned_to: Some(b.clone()),
            resolved_by: None,
        }),
        Entity::Comment(Comment {
            organization_id: org.into(),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            comment_id: comment.clone(),
            from: a.clone(),
            text: format!("{{{{{b}}}}} please look"),
            to: vec![b.clone()],
            tagged_user_contacts: Vec::new(),
        }),
        Entity::CommentReaction(CommentReaction {
            organization_id: org.into(),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            comment_id: comment,
            emoji: "👍".into(),
            user_id: b.clone(),
        }),
        Entity::DocumentReaction(DocumentReaction {
            organization_id: org.into(),
            document_id: doc.clone(),
            reaction_id: format!("bg-r-{d}"),
            emoji: "🎉".into(),
            user_id: a.clone(),
        }),
        Entity::Recording(Recording {
            organization_id: org.into(),
            document_id: doc.clone(),
            recording_id: format!("bg-rec-{d}"),
            from: a.clone(),
            url: format!("https://example.com/{d}.webm"),
        }),
        Entity::Notification(Notification {
            organization_id: org.into(),
            document_id: doc.clone(),
            notification_id: format!("bg-n-{d}"),
            to: b.clone(),
            from: a.clone(),
            text: format!("{{{{{a}}}}} mentioned you"),
        }),
        Entity::View(View {
            organization_id: org.into(),
            document_id: doc,
            annotation_id: ann,
            user_id: b,
        }),
    ]
}

fn access(organization: &str, doc: &str, user: &str) -> Entity {
    Entity::DocumentAccess(DocumentAccess {
        organization_id: organization.into(),
        document_id: doc.into(),
        user_id: user.into(),
        access_role: "editor".into(),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_owns_exactly_the_entities_asked_for() {
        for n in [1, 7, 100, 1234] {
            let owned = user_world("o", "u", n)
                .into_iter()
                .flatten()
                .filter(|e| e.users().contains(&"u"))
                .count();
            assert_eq!(owned, n);
        }
    }

    #[test]
    fn the_background_names_no_synthetic_user() {
        let doc = background_document("o", 5);
        assert_eq!(doc.len(), BACKGROUND_PER_DOCUMENT);
        assert!(doc
            .iter()
            .flat_map(Entity::users)
            .all(|u| u.starts_with("bg-")));
    }
}
