//! The fixture format of CONTRACT §4, and its loading through the data store's write path.

use serde::Deserialize;

use crate::domain::entity::{self as e, Entity};

use super::{DataStore, StoreError};
use crate::domain::ids::{EntityId, OrganizationId, UserId};
use crate::domain::tenant::Tenant;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub organizations: Vec<Organization>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub photo_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grant {
    pub user_id: UserId,
    pub access_role: String,
    #[serde(default)]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Organization {
    pub organization_id: OrganizationId,
    #[serde(default)]
    pub members: Vec<Grant>,
    #[serde(default)]
    pub contacts: Vec<UserId>,
    #[serde(default)]
    pub user_groups: Vec<UserGroup>,
    #[serde(default)]
    pub folders: Vec<Folder>,
    #[serde(default)]
    pub documents: Vec<Document>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserGroup {
    pub group_id: EntityId,
    #[serde(default)]
    pub users: Vec<UserId>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Folder {
    pub folder_id: EntityId,
    #[serde(default)]
    pub users: Vec<Grant>,
    #[serde(default)]
    pub contacts: Vec<UserId>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    pub document_id: EntityId,
    #[serde(default)]
    pub folder_id: Option<EntityId>,
    #[serde(default)]
    pub users: Vec<Grant>,
    #[serde(default)]
    pub contacts: Vec<UserId>,
    #[serde(default)]
    pub comment_annotations: Vec<Annotation>,
    #[serde(default)]
    pub reactions: Vec<DocumentReaction>,
    #[serde(default)]
    pub recordings: Vec<Recording>,
    #[serde(default)]
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Annotation {
    pub annotation_id: EntityId,
    #[serde(default)]
    pub assigned_to: Option<UserId>,
    #[serde(default)]
    pub resolved_by: Option<UserId>,
    #[serde(default)]
    pub viewed_by: Vec<UserId>,
    #[serde(default)]
    pub comments: Vec<Comment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Comment {
    pub comment_id: EntityId,
    pub from: UserId,
    pub text: String,
    #[serde(default)]
    pub to: Vec<UserId>,
    #[serde(default)]
    pub reactions: Vec<CommentReaction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommentReaction {
    pub emoji: String,
    pub user_id: UserId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentReaction {
    pub reaction_id: EntityId,
    pub emoji: String,
    pub user_id: UserId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recording {
    pub recording_id: EntityId,
    pub from: UserId,
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    pub notification_id: EntityId,
    pub to: UserId,
    pub from: UserId,
    pub text: String,
}

/// A fixture that is not valid JSON of the format; the message names the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("fixture is not valid: {0}")]
pub struct FixtureError(#[from] serde_json::Error);

impl Fixture {
    pub fn parse(json: &str) -> Result<Self, FixtureError> {
        Ok(serde_json::from_str(json)?)
    }

    /// The fixture as groups of entities, each written in one call: the users first (comments
    /// derive their tagged contacts from them), then each organization, then each document.
    pub fn into_batches(self) -> Vec<Vec<Entity>> {
        let mut batches = vec![self
            .users
            .into_iter()
            .map(|u| {
                Entity::Profile(e::Profile {
                    user_id: u.user_id.as_str().to_owned(),
                    name: u.name,
                    email: u.email,
                    photo_url: u.photo_url,
                })
            })
            .collect::<Vec<_>>()];
        for organization in self.organizations {
            let org = organization.organization_id.as_str().to_owned();
            let mut entities = vec![Entity::Organization(e::Organization {
                organization_id: org.clone(),
            })];
            entities.extend(organization.members.into_iter().map(|m| {
                Entity::Member(e::Member {
                    organization_id: org.clone(),
                    user_id: m.user_id.as_str().to_owned(),
                    access_role: m.access_role,
                })
            }));
            entities.extend(
                organization
                    .contacts
                    .iter()
                    .map(|u| contact(&org, None, None, u)),
            );
            for group in organization.user_groups {
                let group_id = group.group_id.as_str().to_owned();
                entities.push(Entity::UserGroup(e::UserGroup {
                    organization_id: org.clone(),
                    group_id: group_id.clone(),
                }));
                entities.extend(group.users.into_iter().map(|u| {
                    Entity::GroupMember(e::GroupMember {
                        organization_id: org.clone(),
                        group_id: group_id.clone(),
                        user_id: u.as_str().to_owned(),
                    })
                }));
            }
            for folder in organization.folders {
                let folder_id = folder.folder_id.as_str().to_owned();
                entities.push(Entity::Folder(e::Folder {
                    organization_id: org.clone(),
                    folder_id: folder_id.clone(),
                }));
                entities.extend(folder.users.into_iter().map(|g| {
                    Entity::FolderAccess(e::FolderAccess {
                        organization_id: org.clone(),
                        folder_id: folder_id.clone(),
                        user_id: g.user_id.as_str().to_owned(),
                        access_role: g.access_role,
                    })
                }));
                entities.extend(
                    folder
                        .contacts
                        .iter()
                        .map(|u| contact(&org, Some(&folder_id), None, u)),
                );
            }
            batches.push(entities);
            for document in organization.documents {
                batches.push(document_entities(&org, document));
            }
        }
        batches
    }
}

fn contact(org: &str, folder: Option<&str>, document: Option<&str>, user: &UserId) -> Entity {
    Entity::Contact(e::Contact {
        organization_id: org.to_owned(),
        folder_id: folder.map(str::to_owned),
        document_id: document.map(str::to_owned),
        user_id: user.as_str().to_owned(),
    })
}

fn document_entities(org: &str, document: Document) -> Vec<Entity> {
    let doc = document.document_id.as_str().to_owned();
    let owned = |s: &str| s.to_owned();
    let mut entities = vec![Entity::Document(e::Document {
        organization_id: owned(org),
        document_id: doc.clone(),
        folder_id: document.folder_id.map(|f| f.as_str().to_owned()),
    })];
    entities.extend(document.users.into_iter().map(|g| {
        Entity::DocumentAccess(e::DocumentAccess {
            organization_id: owned(org),
            document_id: doc.clone(),
            user_id: g.user_id.as_str().to_owned(),
            access_role: g.access_role,
            expires_at: g.expires_at,
        })
    }));
    entities.extend(
        document
            .contacts
            .iter()
            .map(|u| contact(org, None, Some(&doc), u)),
    );
    for annotation in document.comment_annotations {
        let ann = annotation.annotation_id.as_str().to_owned();
        entities.push(Entity::Annotation(e::Annotation {
            organization_id: owned(org),
            document_id: doc.clone(),
            annotation_id: ann.clone(),
            assigned_to: annotation.assigned_to.map(|u| u.as_str().to_owned()),
            resolved_by: annotation.resolved_by.map(|u| u.as_str().to_owned()),
        }));
        entities.extend(annotation.viewed_by.into_iter().map(|u| {
            Entity::View(e::View {
                organization_id: owned(org),
                document_id: doc.clone(),
                annotation_id: ann.clone(),
                user_id: u.as_str().to_owned(),
            })
        }));
        for comment in annotation.comments {
            let comment_id = comment.comment_id.as_str().to_owned();
            entities.extend(comment.reactions.into_iter().map(|r| {
                Entity::CommentReaction(e::CommentReaction {
                    organization_id: owned(org),
                    document_id: doc.clone(),
                    annotation_id: ann.clone(),
                    comment_id: comment_id.clone(),
                    emoji: r.emoji,
                    user_id: r.user_id.as_str().to_owned(),
                })
            }));
            entities.push(Entity::Comment(e::Comment {
                organization_id: owned(org),
                document_id: doc.clone(),
                annotation_id: ann.clone(),
                comment_id,
                from: comment.from.as_str().to_owned(),
                text: comment.text,
                to: comment.to.iter().map(|u| u.as_str().to_owned()).collect(),
                tagged_user_contacts: Vec::new(),
            }));
        }
    }
    entities.extend(document.reactions.into_iter().map(|r| {
        Entity::DocumentReaction(e::DocumentReaction {
            organization_id: owned(org),
            document_id: doc.clone(),
            reaction_id: r.reaction_id.as_str().to_owned(),
            emoji: r.emoji,
            user_id: r.user_id.as_str().to_owned(),
        })
    }));
    entities.extend(document.recordings.into_iter().map(|r| {
        Entity::Recording(e::Recording {
            organization_id: owned(org),
            document_id: doc.clone(),
            recording_id: r.recording_id.as_str().to_owned(),
            from: r.from.as_str().to_owned(),
            url: r.url,
        })
    }));
    entities.extend(document.notifications.into_iter().map(|n| {
        Entity::Notification(e::Notification {
            organization_id: owned(org),
            document_id: doc.clone(),
            notification_id: n.notification_id.as_str().to_owned(),
            to: n.to.as_str().to_owned(),
            from: n.from.as_str().to_owned(),
            text: n.text,
        })
    }));
    entities
}

impl DataStore {
    /// Loads a fixture for `tenant` through the write path; `progress` hears how many entities
    /// each written batch held.
    pub async fn load_fixture(
        &self,
        tenant: &Tenant,
        fixture: Fixture,
        mut progress: impl FnMut(usize),
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        for batch in fixture.into_batches() {
            let count = batch.len();
            self.write(tenant, batch).await?;
            total += count;
            progress(count);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT_EXAMPLE: &str = r#"{
      "users": [{"userId": "u1", "name": "Ada Lovelace", "email": "ada@example.com", "photoUrl": "https://example.com/a.png"}],
      "organizations": [{
        "organizationId": "org1",
        "members": [{"userId": "u1", "accessRole": "editor"}],
        "contacts": ["u1", "u2"],
        "userGroups": [{"groupId": "g1", "users": ["u1"]}],
        "folders": [{"folderId": "f1", "users": [{"userId": "u2", "accessRole": "viewer"}], "contacts": ["u2"]}],
        "documents": [{
          "documentId": "d1", "folderId": "f1",
          "users": [{"userId": "u1", "accessRole": "editor", "expiresAt": 1893456000000}],
          "contacts": ["u1"],
          "commentAnnotations": [{
            "annotationId": "a1", "assignedTo": "u2", "resolvedBy": null, "viewedBy": ["u2"],
            "comments": [{"commentId": "c1", "from": "u1", "text": "Can {{u2}} review this?", "to": ["u2"],
                          "reactions": [{"emoji": "👍", "userId": "u2"}]}]
          }],
          "reactions": [{"reactionId": "r1", "emoji": "🎉", "userId": "u1"}],
          "recordings": [{"recordingId": "rec1", "from": "u1", "url": "https://example.com/rec1.webm"}],
          "notifications": [{"notificationId": "n1", "to": "u2", "from": "u1", "text": "{{u1}} mentioned you"}]
        }]
      }]
    }"#;

    #[test]
    fn the_contract_example_loads_into_every_entity() {
        let batches = Fixture::parse(CONTRACT_EXAMPLE).unwrap().into_batches();
        let entities: Vec<Entity> = batches.into_iter().flatten().collect();
        assert_eq!(entities.len(), 20);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let error = Fixture::parse(r#"{"users":[],"groups":[]}"#).unwrap_err();
        assert!(error.to_string().contains("groups"), "{error}");
        let error =
            Fixture::parse(r#"{"users":[{"userId":"u","name":"n","email":"e","nickname":"x"}]}"#)
                .unwrap_err();
        assert!(error.to_string().contains("nickname"), "{error}");
    }

    #[test]
    fn invalid_ids_are_refused() {
        assert!(Fixture::parse(r#"{"users":[{"userId":"","name":"n","email":"e"}]}"#).is_err());
    }
}
