//! The entities of the collaboration product, their keys, and the users each one refers to.
//!
//! Every entity knows its own key and its references: the (user, feature) pairs that must find
//! it when that user is erased. The write path stores one reference item per pair in the user's
//! partition, and erasure follows them, so the cost of erasing a user follows what they own.
//! Plain data and string layout: the store writes these keys, nothing here talks to DynamoDB.

use serde::{Deserialize, Serialize};

use super::mention::mention_tokens;
use super::task::TaskKind;
use super::tenant::Tenant;
use crate::keys::component;

/// A DynamoDB primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub organization_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub organization_id: String,
    pub user_id: String,
    pub access_role: String,
}

/// An entry of an @mention contact list: of an organization, a folder or a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub organization_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserGroup {
    pub organization_id: String,
    pub group_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMember {
    pub organization_id: String,
    pub group_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub organization_id: String,
    pub folder_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderAccess {
    pub organization_id: String,
    pub folder_id: String,
    pub user_id: String,
    pub access_role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub organization_id: String,
    pub document_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentAccess {
    pub organization_id: String,
    pub document_id: String,
    pub user_id: String,
    pub access_role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub organization_id: String,
    pub document_id: String,
    pub annotation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// A user a comment tags, as the user's record said when the comment was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaggedContact {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub organization_id: String,
    pub document_id: String,
    pub annotation_id: String,
    pub comment_id: String,
    pub from: String,
    pub text: String,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub tagged_user_contacts: Vec<TaggedContact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentReaction {
    pub organization_id: String,
    pub document_id: String,
    pub annotation_id: String,
    pub comment_id: String,
    pub emoji: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReaction {
    pub organization_id: String,
    pub document_id: String,
    pub reaction_id: String,
    pub emoji: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    pub organization_id: String,
    pub document_id: String,
    pub recording_id: String,
    pub from: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub organization_id: String,
    pub document_id: String,
    pub notification_id: String,
    pub to: String,
    pub from: String,
    pub text: String,
}

/// A user having seen an annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    pub organization_id: String,
    pub document_id: String,
    pub annotation_id: String,
    pub user_id: String,
}

/// Everything the data store holds, tagged by `entity` in each item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity")]
pub enum Entity {
    Profile(Profile),
    Organization(Organization),
    Member(Member),
    Contact(Contact),
    UserGroup(UserGroup),
    GroupMember(GroupMember),
    Folder(Folder),
    FolderAccess(FolderAccess),
    Document(Document),
    DocumentAccess(DocumentAccess),
    Annotation(Annotation),
    Comment(Comment),
    CommentReaction(CommentReaction),
    DocumentReaction(DocumentReaction),
    Recording(Recording),
    Notification(Notification),
    View(View),
}

fn annotation_sort_key(annotation_id: &str) -> String {
    format!("ANN#{}", component(annotation_id))
}

fn comment_sort_key(annotation_id: &str, comment_id: &str) -> String {
    format!(
        "{}#C#{}",
        annotation_sort_key(annotation_id),
        component(comment_id)
    )
}

impl Entity {
    /// The item's primary key inside `tenant`. Child entities sort under their parent
    /// (`ANN#a` → `ANN#a#C#c` → `ANN#a#C#c#R#…`), so a parent's subtree is one key range.
    pub fn key(&self, tenant: &Tenant) -> Key {
        let (pk, sk) = match self {
            Entity::Profile(p) => (tenant.user_partition(&p.user_id), "PROFILE".to_owned()),
            Entity::Organization(o) => (
                tenant.organization_partition(&o.organization_id),
                "ORG".to_owned(),
            ),
            Entity::Member(m) => (
                tenant.organization_partition(&m.organization_id),
                format!("MEMBER#{}", component(&m.user_id)),
            ),
            Entity::Contact(c) => match (&c.folder_id, &c.document_id) {
                (_, Some(document_id)) => (
                    tenant.document_partition(&c.organization_id, document_id),
                    format!("CONTACT#{}", component(&c.user_id)),
                ),
                (Some(folder_id), None) => (
                    tenant.organization_partition(&c.organization_id),
                    format!(
                        "FOLDER#{}#CONTACT#{}",
                        component(folder_id),
                        component(&c.user_id)
                    ),
                ),
                (None, None) => (
                    tenant.organization_partition(&c.organization_id),
                    format!("CONTACT#{}", component(&c.user_id)),
                ),
            },
            Entity::UserGroup(g) => (
                tenant.organization_partition(&g.organization_id),
                format!("GROUP#{}", component(&g.group_id)),
            ),
            Entity::GroupMember(g) => (
                tenant.organization_partition(&g.organization_id),
                format!(
                    "GROUP#{}#USER#{}",
                    component(&g.group_id),
                    component(&g.user_id)
                ),
            ),
            Entity::Folder(f) => (
                tenant.organization_partition(&f.organization_id),
                format!("FOLDER#{}", component(&f.folder_id)),
            ),
            Entity::FolderAccess(f) => (
                tenant.organization_partition(&f.organization_id),
                format!(
                    "FOLDER#{}#ACCESS#{}",
                    component(&f.folder_id),
                    component(&f.user_id)
                ),
            ),
            Entity::Document(d) => (
                tenant.document_partition(&d.organization_id, &d.document_id),
                "DOC".to_owned(),
            ),
            Entity::DocumentAccess(a) => (
                tenant.document_partition(&a.organization_id, &a.document_id),
                format!("ACCESS#{}", component(&a.user_id)),
            ),
            Entity::Annotation(a) => (
                tenant.document_partition(&a.organization_id, &a.document_id),
                annotation_sort_key(&a.annotation_id),
            ),
            Entity::View(v) => (
                tenant.document_partition(&v.organization_id, &v.document_id),
                format!(
                    "{}#VIEW#{}",
                    annotation_sort_key(&v.annotation_id),
                    component(&v.user_id)
                ),
            ),
            Entity::Comment(c) => (
                tenant.document_partition(&c.organization_id, &c.document_id),
                comment_sort_key(&c.annotation_id, &c.comment_id),
            ),
            Entity::CommentReaction(r) => (
                tenant.document_partition(&r.organization_id, &r.document_id),
                format!(
                    "{}#R#{}#{}",
                    comment_sort_key(&r.annotation_id, &r.comment_id),
                    component(&r.user_id),
                    component(&r.emoji)
                ),
            ),
            Entity::DocumentReaction(r) => (
                tenant.document_partition(&r.organization_id, &r.document_id),
                format!("REACTION#{}", component(&r.reaction_id)),
            ),
            Entity::Recording(r) => (
                tenant.document_partition(&r.organization_id, &r.document_id),
                format!("RECORDING#{}", component(&r.recording_id)),
            ),
            Entity::Notification(n) => (
                tenant.document_partition(&n.organization_id, &n.document_id),
                format!("NOTIFICATION#{}", component(&n.notification_id)),
            ),
        };
        Key { pk, sk }
    }

    /// The organization the entity lives in; `None` for the user record.
    pub fn organization_id(&self) -> Option<&str> {
        Some(match self {
            Entity::Profile(_) => return None,
            Entity::Organization(e) => &e.organization_id,
            Entity::Member(e) => &e.organization_id,
            Entity::Contact(e) => &e.organization_id,
            Entity::UserGroup(e) => &e.organization_id,
            Entity::GroupMember(e) => &e.organization_id,
            Entity::Folder(e) => &e.organization_id,
            Entity::FolderAccess(e) => &e.organization_id,
            Entity::Document(e) => &e.organization_id,
            Entity::DocumentAccess(e) => &e.organization_id,
            Entity::Annotation(e) => &e.organization_id,
            Entity::Comment(e) => &e.organization_id,
            Entity::CommentReaction(e) => &e.organization_id,
            Entity::DocumentReaction(e) => &e.organization_id,
            Entity::Recording(e) => &e.organization_id,
            Entity::Notification(e) => &e.organization_id,
            Entity::View(e) => &e.organization_id,
        })
    }

    /// The (user, feature) pairs that must reach this entity, without repeats.
    pub fn references(&self) -> Vec<(&str, TaskKind)> {
        let mut refs: Vec<(&str, TaskKind)> = match self {
            Entity::Organization(_)
            | Entity::UserGroup(_)
            | Entity::Folder(_)
            | Entity::Document(_) => vec![],
            Entity::Profile(p) => vec![(&p.user_id, TaskKind::Profile)],
            Entity::Member(e) => vec![(&e.user_id, TaskKind::Access)],
            Entity::GroupMember(e) => vec![(&e.user_id, TaskKind::Access)],
            Entity::FolderAccess(e) => vec![(&e.user_id, TaskKind::Access)],
            Entity::DocumentAccess(e) => vec![(&e.user_id, TaskKind::Access)],
            Entity::Contact(e) => vec![(&e.user_id, TaskKind::Contacts)],
            Entity::Annotation(a) => a
                .assigned_to
                .iter()
                .chain(&a.resolved_by)
                .map(|u| (u.as_str(), TaskKind::Comments))
                .collect(),
            Entity::View(e) => vec![(&e.user_id, TaskKind::Views)],
            Entity::Comment(c) => std::iter::once((c.from.as_str(), TaskKind::Comments))
                .chain(c.to.iter().map(|u| (u.as_str(), TaskKind::Mentions)))
                .chain(
                    c.tagged_user_contacts
                        .iter()
                        .map(|t| (t.user_id.as_str(), TaskKind::Mentions)),
                )
                .chain(
                    mention_tokens(&c.text)
                        .into_iter()
                        .map(|u| (u, TaskKind::Mentions)),
                )
                .collect(),
            Entity::CommentReaction(e) => vec![(&e.user_id, TaskKind::Reactions)],
            Entity::DocumentReaction(e) => vec![(&e.user_id, TaskKind::Reactions)],
            Entity::Recording(e) => vec![(&e.from, TaskKind::Recordings)],
            Entity::Notification(n) => [n.to.as_str(), n.from.as_str()]
                .into_iter()
                .chain(mention_tokens(&n.text))
                .map(|u| (u, TaskKind::Notifications))
                .collect(),
        };
        let mut seen = Vec::with_capacity(refs.len());
        refs.retain(|r| {
            let fresh = !seen.contains(r);
            if fresh {
                seen.push(*r);
            }
            fresh
        });
        refs
    }

    /// Whether other entities sort under this one and go with it.
    pub fn has_children(&self) -> bool {
        matches!(self, Entity::Annotation(_) | Entity::Comment(_))
    }

    /// The users the entity names anywhere (for the write path's tombstone check).
    pub fn users(&self) -> Vec<&str> {
        self.references().into_iter().map(|(u, _)| u).collect()
    }

    /// For a comment: the key of its annotation, which goes when its last comment goes.
    /// (From the key alone, see [`annotation_of_comment_key`], when the comment is gone.)
    pub fn parent_annotation(&self, tenant: &Tenant) -> Option<Key> {
        match self {
            Entity::Comment(c) => Some(Key {
                pk: tenant.document_partition(&c.organization_id, &c.document_id),
                sk: annotation_sort_key(&c.annotation_id),
            }),
            _ => None,
        }
    }
}

/// The annotation of the comment at `key`, read from the key's shape (`ANN#a#C#c`): what a
/// retry needs when a crash left a removed comment's annotation unswept.
pub fn annotation_of_comment_key(key: &Key) -> Option<Key> {
    let parts: Vec<&str> = key.sk.split('#').collect();
    match parts.as_slice() {
        ["ANN", annotation, "C", _] => Some(Key {
            pk: key.pk.clone(),
            sk: format!("ANN#{annotation}"),
        }),
        _ => None,
    }
}

/// The reference item that leads `user`'s `kind` task to the item at `target`.
pub fn reference_key(
    tenant: &Tenant,
    user_id: &str,
    kind: TaskKind,
    organization_id: Option<&str>,
    target: &Key,
) -> Key {
    Key {
        pk: tenant.user_partition(user_id),
        sk: format!(
            "{}{}",
            reference_prefix(kind, organization_id),
            component(&format!("{}\u{0}{}", target.pk, target.sk))
        ),
    }
}

/// The sort-key prefix of `kind`'s references, inside one organization or (`None`) outside any.
pub fn reference_prefix(kind: TaskKind, organization_id: Option<&str>) -> String {
    let scope = organization_id.map_or_else(|| "_".to_owned(), component);
    format!("REF#{kind}#{scope}#")
}

/// The sort-key prefix of all of `kind`'s references of a user.
pub fn reference_kind_prefix(kind: TaskKind) -> String {
    format!("REF#{kind}#")
}

/// The sort key of a user's tombstone.
pub const TOMBSTONE_SORT_KEY: &str = "TOMBSTONE";

/// The key of `user_id`'s tombstone in `tenant`: in the user's own partition.
pub fn tombstone_key(tenant: &Tenant, user_id: &str) -> Key {
    tombstone_key_of_hash(tenant, &component(user_id))
}

/// The key of the tombstone of the user whose id has the key hash `user_hash`.
pub fn tombstone_key_of_hash(tenant: &Tenant, user_hash: &str) -> Key {
    Key {
        pk: tenant.user_partition_of_hash(user_hash),
        sk: TOMBSTONE_SORT_KEY.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment(text: &str, from: &str, to: &[&str]) -> Entity {
        Entity::Comment(Comment {
            organization_id: "o".into(),
            document_id: "d".into(),
            annotation_id: "a".into(),
            comment_id: "c".into(),
            from: from.into(),
            text: text.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
            tagged_user_contacts: vec![],
        })
    }

    #[test]
    fn a_comment_refers_to_its_author_and_everyone_it_mentions_once() {
        let c = comment("{{b}} {{c}} {{b}}", "a", &["b"]);
        assert_eq!(
            c.references(),
            [
                ("a", TaskKind::Comments),
                ("b", TaskKind::Mentions),
                ("c", TaskKind::Mentions)
            ]
        );
    }

    #[test]
    fn a_comment_sorts_under_its_annotation() {
        let tenant = Tenant::from_api_key("k");
        let c = comment("", "a", &[]);
        let annotation = c.parent_annotation(&tenant).unwrap();
        let key = c.key(&tenant);
        assert_eq!(key.pk, annotation.pk);
        assert!(key.sk.starts_with(&format!("{}#", annotation.sk)));
    }

    #[test]
    fn a_comment_key_names_its_annotation_and_no_other_key_does() {
        let tenant = Tenant::from_api_key("k");
        let c = comment("", "a", &[]);
        assert_eq!(
            annotation_of_comment_key(&c.key(&tenant)),
            c.parent_annotation(&tenant)
        );
        let reaction = Entity::CommentReaction(CommentReaction {
            organization_id: "o".into(),
            document_id: "d".into(),
            annotation_id: "a".into(),
            comment_id: "c".into(),
            emoji: "e".into(),
            user_id: "u".into(),
        });
        assert_eq!(annotation_of_comment_key(&reaction.key(&tenant)), None);
    }

    #[test]
    fn reference_keys_of_one_organization_never_match_another() {
        let tenant = Tenant::from_api_key("k");
        let target = Key {
            pk: "p".into(),
            sk: "s".into(),
        };
        let r = reference_key(&tenant, "u", TaskKind::Access, Some("org1"), &target);
        assert!(r
            .sk
            .starts_with(&reference_prefix(TaskKind::Access, Some("org1"))));
        assert!(!r
            .sk
            .starts_with(&reference_prefix(TaskKind::Access, Some("org10"))));
        assert!(!r.sk.contains("org1"));
    }
}
