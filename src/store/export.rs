//! Export of one user's data in one organization (right of access, CONTRACT §1.4), a page at a
//! time, through the user's own reference items: a page is one `Query` per section on the user's
//! partition and one `BatchGetItem` of the targets, so its cost follows the user, not the table.

use std::collections::HashMap;

use futures::future::try_join_all;
use serde::{Deserialize, Serialize};

use crate::domain::entity::{reference_prefix, Entity, Key, TOMBSTONE_SORT_KEY};

use super::{tombstone_covers, DataStore};
use crate::domain::ids::{OrganizationId, UserId};
use crate::domain::task::TaskKind;
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};

/// The most items of one section a page carries.
pub const PAGE_ITEMS: usize = 100;

/// The arrays of an export, in the order of [`Cursors`]. Velt's four, then ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Comments,
    Reactions,
    Recordings,
    Notifications,
    Profile,
    Access,
    Contacts,
    Views,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Comments,
        Section::Reactions,
        Section::Recordings,
        Section::Notifications,
        Section::Profile,
        Section::Access,
        Section::Contacts,
        Section::Views,
    ];

    /// The reference kinds a section reads, one after another. `comments` holds the comments
    /// the user wrote and the annotations assigned to or resolved by them (`comments`
    /// references), then the comments of others that tag them (`mentions` references).
    /// `profile` lives outside organizations and is read by its key instead.
    fn sources(self) -> &'static [TaskKind] {
        match self {
            Section::Comments => &[TaskKind::Comments, TaskKind::Mentions],
            Section::Reactions => &[TaskKind::Reactions],
            Section::Recordings => &[TaskKind::Recordings],
            Section::Notifications => &[TaskKind::Notifications],
            Section::Profile => &[],
            Section::Access => &[TaskKind::Access],
            Section::Contacts => &[TaskKind::Contacts],
            Section::Views => &[TaskKind::Views],
        }
    }
}

/// Where a section's next page starts: a source of [`Section::sources`] and the sort key of
/// the last reference already exported from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "s")]
    source: usize,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// Where each section's next page starts (`None`: the section is done), in [`Section::ALL`]'s
/// order. The API seals it into the page token; the store trusts it only that far and checks
/// every position against the user's own key range before reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursors(Vec<Option<Position>>);

impl Cursors {
    /// The first page.
    pub fn start() -> Self {
        Self(
            Section::ALL
                .iter()
                .map(|_| {
                    Some(Position {
                        source: 0,
                        after: None,
                    })
                })
                .collect(),
        )
    }

    fn is_done(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Why a page cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    /// Cursors this code never issues for this organization: refused before anything is read.
    #[error("the page cursors do not fit this export")]
    BadCursors,
}

/// How the user is involved in an exported comment, annotation or notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Involvement {
    Author,
    Tagged,
    Assignee,
    Resolver,
    Recipient,
    Sender,
    Mentioned,
}

/// One exported entity: the caller's own ids and fields, never key hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportItem {
    #[serde(flatten)]
    pub entity: Entity,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub involvement: Vec<Involvement>,
}

/// One page of an export: Velt's four arrays, then the features beyond them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportData {
    pub comments: Vec<ExportItem>,
    pub reactions: Vec<ExportItem>,
    pub recordings: Vec<ExportItem>,
    pub notifications: Vec<ExportItem>,
    pub profile: Vec<ExportItem>,
    pub access: Vec<ExportItem>,
    pub contacts: Vec<ExportItem>,
    pub views: Vec<ExportItem>,
}

impl ExportData {
    fn section_mut(&mut self, section: Section) -> &mut Vec<ExportItem> {
        match section {
            Section::Comments => &mut self.comments,
            Section::Reactions => &mut self.reactions,
            Section::Recordings => &mut self.recordings,
            Section::Notifications => &mut self.notifications,
            Section::Profile => &mut self.profile,
            Section::Access => &mut self.access,
            Section::Contacts => &mut self.contacts,
            Section::Views => &mut self.views,
        }
    }

    /// Appends another page's items (the CLI gathers all pages into one document).
    pub fn extend(&mut self, page: ExportData) {
        self.comments.extend(page.comments);
        self.reactions.extend(page.reactions);
        self.recordings.extend(page.recordings);
        self.notifications.extend(page.notifications);
        self.profile.extend(page.profile);
        self.access.extend(page.access);
        self.contacts.extend(page.contacts);
        self.views.extend(page.views);
    }

    /// How many items the page holds, all sections together.
    pub fn len(&self) -> usize {
        [
            &self.comments,
            &self.reactions,
            &self.recordings,
            &self.notifications,
            &self.profile,
            &self.access,
            &self.contacts,
            &self.views,
        ]
        .iter()
        .map(|s| s.len())
        .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A page and where the next one starts (`None` on the last page).
#[derive(Debug)]
pub struct ExportPage {
    pub data: ExportData,
    pub next: Option<Cursors>,
}

impl ExportPage {
    fn empty() -> Self {
        Self {
            data: ExportData::default(),
            next: None,
        }
    }
}

/// The references one section found for this page, each with the kind that led to it.
struct SectionRead {
    references: Vec<(TaskKind, Key)>,
    next: Option<Position>,
}

/// How `user` is involved in `entity` when a reference of `kind` led to it; `None` when the
/// entity no longer names the user that way (a stale reference) and is not exported.
fn involvement(entity: &Entity, user: &str, kind: TaskKind) -> Option<Vec<Involvement>> {
    let references = entity.references();
    if !references.contains(&(user, kind)) {
        return None;
    }
    // A comment the user wrote and also tags is exported once, from the `comments` source.
    if kind == TaskKind::Mentions && references.contains(&(user, TaskKind::Comments)) {
        return None;
    }
    let mut found = Vec::new();
    let mut add = |yes: bool, what: Involvement| {
        if yes {
            found.push(what);
        }
    };
    match entity {
        Entity::Comment(c) => {
            add(c.from == user, Involvement::Author);
            add(
                references.contains(&(user, TaskKind::Mentions)),
                Involvement::Tagged,
            );
        }
        Entity::Annotation(a) => {
            add(
                a.assigned_to.as_deref() == Some(user),
                Involvement::Assignee,
            );
            add(
                a.resolved_by.as_deref() == Some(user),
                Involvement::Resolver,
            );
        }
        Entity::Notification(n) => {
            add(n.to == user, Involvement::Recipient);
            add(n.from == user, Involvement::Sender);
            add(
                crate::domain::mention::mention_tokens(&n.text).contains(&user),
                Involvement::Mentioned,
            );
        }
        _ => {}
    }
    Some(found)
}

/// `entity` as `user`'s export shows it. GDPR art. 15(4): the copy must not adversely affect
/// the rights of others, so the other users a comment tags appear by their id alone, without
/// the names and emails captured when it was stored; the user's own contact stays whole.
fn as_exported(entity: &Entity, user: &str) -> Entity {
    let mut entity = entity.clone();
    if let Entity::Comment(comment) = &mut entity {
        for contact in &mut comment.tagged_user_contacts {
            if contact.user_id != user {
                contact.name = None;
                contact.email = None;
            }
        }
    }
    entity
}

fn target_key(reference: &Item) -> Option<Key> {
    match (reference.get("targetPk"), reference.get("targetSk")) {
        (
            Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)),
            Some(aws_sdk_dynamodb::types::AttributeValue::S(sk)),
        ) => Some(Key {
            pk: pk.clone(),
            sk: sk.clone(),
        }),
        _ => None,
    }
}

impl DataStore {
    /// One page of `user`'s data in `organization`, from `cursors` on. A user with a tombstone
    /// covering the organization exports nothing, and so does one whose tombstone appears while
    /// the page is read: erasure starts only after the tombstone is stored, so a page read
    /// entirely before a consistent read that finds none holds no half-erased data.
    pub async fn export_page(
        &self,
        tenant: &Tenant,
        user: &UserId,
        organization: &OrganizationId,
        cursors: &Cursors,
    ) -> Result<ExportPage, ExportError> {
        let pk = tenant.user_partition(user.as_str());
        let positions = checked(organization, cursors)?;
        if self.erased(&pk, organization).await? {
            return Ok(ExportPage::empty());
        }
        let reads = try_join_all(
            Section::ALL
                .iter()
                .zip(positions)
                .map(|(section, position)| {
                    self.read_section(&pk, organization, *section, position)
                }),
        )
        .await?;
        let mut keys: Vec<Key> = reads
            .iter()
            .flat_map(|r| r.references.iter().map(|(_, key)| key.clone()))
            .collect();
        let profile_key = Key {
            pk: pk.clone(),
            sk: "PROFILE".to_owned(),
        };
        let wants_profile = cursors.0[profile_index()].is_some();
        if wants_profile {
            keys.push(profile_key.clone());
        }
        let targets: HashMap<Key, Entity> =
            dynamo::batch_get(&self.client, &self.table, &keys, false)
                .await?
                .into_iter()
                .filter_map(|item| dynamo::item_key(&item).map(|key| (key, item)))
                .map(|(key, item)| {
                    Ok((
                        key,
                        serde_dynamo::from_item(item).map_err(DynamoError::Shape)?,
                    ))
                })
                .collect::<Result<_, DynamoError>>()?;
        // The second look: a tombstone stored while we read voids the page.
        if self.erased(&pk, organization).await? {
            return Ok(ExportPage::empty());
        }
        let mut data = ExportData::default();
        let mut next = Vec::with_capacity(Section::ALL.len());
        for (section, read) in Section::ALL.iter().zip(reads) {
            let items = data.section_mut(*section);
            for (kind, key) in &read.references {
                let Some(entity) = targets.get(key) else {
                    continue;
                };
                if entity.organization_id() != Some(organization.as_str()) {
                    continue;
                }
                if let Some(involvement) = involvement(entity, user.as_str(), *kind) {
                    items.push(ExportItem {
                        entity: as_exported(entity, user.as_str()),
                        involvement,
                    });
                }
            }
            next.push(read.next);
        }
        if wants_profile {
            if let Some(entity @ Entity::Profile(p)) = targets.get(&profile_key) {
                if p.user_id == user.as_str() {
                    data.profile.push(ExportItem {
                        entity: entity.clone(),
                        involvement: Vec::new(),
                    });
                }
            }
        }
        let next = Cursors(next);
        Ok(ExportPage {
            data,
            next: (!next.is_done()).then_some(next),
        })
    }

    /// Whether the user's tombstone covers the organization (a consistent read).
    async fn erased(&self, pk: &str, organization: &OrganizationId) -> Result<bool, DynamoError> {
        let key = Key {
            pk: pk.to_owned(),
            sk: TOMBSTONE_SORT_KEY.to_owned(),
        };
        let found = dynamo::batch_get(&self.client, &self.table, &[key], true).await?;
        Ok(found
            .iter()
            .any(|tombstone| tombstone_covers(tombstone, Some(organization.as_str()))))
    }

    /// Up to [`PAGE_ITEMS`] references of one section from `position`, reading its sources one
    /// after another; and where the next page starts, `None` when nothing is left. One item
    /// more than needed is asked for, so a page that ends a source knows it did and the last
    /// page says it is the last.
    async fn read_section(
        &self,
        pk: &str,
        organization: &OrganizationId,
        section: Section,
        position: Option<Position>,
    ) -> Result<SectionRead, DynamoError> {
        let mut references = Vec::new();
        let Some(mut position) = position else {
            return Ok(SectionRead {
                references,
                next: None,
            });
        };
        let sources = section.sources();
        while let Some(kind) = sources.get(position.source) {
            let prefix = reference_prefix(*kind, Some(organization.as_str()));
            let room = PAGE_ITEMS - references.len();
            let start = position.after.as_ref().map(|sk| {
                dynamo::key_item(&Key {
                    pk: pk.to_owned(),
                    sk: sk.clone(),
                })
            });
            let page = dynamo::query_prefix(
                &self.client,
                &self.table,
                pk,
                &prefix,
                (room + 1) as i32,
                start,
                false,
            )
            .await?;
            let mut items = page.items.into_iter();
            let mut last = position.after.clone();
            for item in items.by_ref().take(room) {
                if let Some(target) = target_key(&item) {
                    references.push((*kind, target));
                }
                last = dynamo::item_key(&item).map(|k| k.sk);
            }
            if items.next().is_some() {
                // More of this source than the page has room for.
                return Ok(SectionRead {
                    references,
                    next: Some(Position {
                        source: position.source,
                        after: last,
                    }),
                });
            }
            if let Some(end) = page.next.as_ref().and_then(dynamo::item_key) {
                // The query stopped at its size limit with room left: go on from its end.
                position.after = Some(end.sk);
                continue;
            }
            position = Position {
                source: position.source + 1,
                after: None,
            };
        }
        Ok(SectionRead {
            references,
            next: None,
        })
    }
}

fn profile_index() -> usize {
    Section::ALL
        .iter()
        .position(|s| *s == Section::Profile)
        .unwrap_or_default()
}

/// The cursors' positions, each checked to lie in this user's key range of its source in this
/// organization: a cursor can only move forward through the user's own references.
fn checked(
    organization: &OrganizationId,
    cursors: &Cursors,
) -> Result<Vec<Option<Position>>, ExportError> {
    if cursors.0.len() != Section::ALL.len() {
        return Err(ExportError::BadCursors);
    }
    Section::ALL
        .iter()
        .zip(&cursors.0)
        .map(|(section, position)| {
            let Some(position) = position else {
                return Ok(None);
            };
            let sources = section.sources();
            let fits = match (sources.get(position.source), &position.after) {
                (Some(kind), Some(after)) => {
                    after.starts_with(&reference_prefix(*kind, Some(organization.as_str())))
                }
                (Some(_), None) => true,
                // The profile has no source: only its start position exists.
                (None, None) => *section == Section::Profile && position.source == 0,
                (None, Some(_)) => false,
            };
            if fits {
                Ok(Some(position.clone()))
            } else {
                Err(ExportError::BadCursors)
            }
        })
        .collect()
}
