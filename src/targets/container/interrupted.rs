//! Swaps a crash interrupted, found by label: a target selected by `--label` (with
//! `--scope`, a compose project's labels) has no container under its name while its swap
//! is set aside (`NAME-tr-old-ROT` beside `NAME-tr-new-ROT`), so the name alone cannot
//! find it. Both containers still carry the selector's labels (the old one is the
//! original, the replacement copies its labels), and the rotator's own labels say whose
//! swap they belong to: `token-rotator.target-name` (the name the replacement is meant to
//! carry), `.rotation` and `.replaces`. A dependent's copy (`token-rotator.dependent-of`)
//! belongs to its target's swap.
//!
//! This module only says which targets have such leftovers; finishing or undoing them is
//! the one undo ([`super::undo`]), run by the pipeline under each target's lock.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

use super::dependents::DEPENDENT_OF;
use crate::engine::names::{listed_name, Marker};
use crate::engine::{labels, EngineError};
use crate::targets::TargetError;

/// Whose interrupted swap the container `name` (with `labels`) belongs to, if it is a
/// leftover of one: `(target, owns_dependents)`. A dependent's copy belongs to the target
/// it follows; a replacement to the name it is meant to carry; an old container set aside
/// to the name in its marker. Locks and canaries carry none of the target's labels and are
/// never found this way (the target's own settle removes a canary).
pub fn swap_of(name: &str, labels: &HashMap<String, String>) -> Option<(String, bool)> {
    let (in_name, marker) = Marker::parse(name)?;
    if matches!(marker, Marker::Lock | Marker::Canary) {
        return None;
    }
    if let Some(owner) = labels.get(DEPENDENT_OF).filter(|o| !o.is_empty()) {
        return Some((owner.clone(), true));
    }
    let meant = labels.get(labels::TARGET_NAME).filter(|t| !t.is_empty());
    // A replacement names its target; an old container's label is from an earlier swap
    // (it may have been renamed since): its marker name says where it belongs now.
    let target = match (marker, meant) {
        (Marker::New, Some(t)) => t.clone(),
        _ => in_name.to_string(),
    };
    Some((target, false))
}

/// The targets with leftovers among `found`, each once: those that others' copies follow
/// first (their settle finishes or undoes their dependents' swaps too), then by name.
pub fn targets_of(found: &[(String, HashMap<String, String>)]) -> Vec<String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for (name, labels) in found {
        let Some((target, owner)) = swap_of(name, labels) else {
            continue;
        };
        match out.iter_mut().find(|(_, t)| *t == target) {
            Some(seen) => seen.0 |= owner,
            None => out.push((owner, target)),
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    out.into_iter().map(|(_, t)| t).collect()
}

/// The targets whose swap was interrupted among the containers carrying all of `required`
/// (the selector's labels); none when nothing is selected by label.
pub async fn by_label(
    docker: &Docker,
    required: &[(String, String)],
) -> Result<Vec<String>, TargetError> {
    if required.is_empty() {
        return Ok(Vec::new());
    }
    let found = listed(docker, required).await?;
    let named: Vec<(String, HashMap<String, String>)> = found
        .into_iter()
        .filter_map(|c| Some((listed_name(&c)?, c.labels.unwrap_or_default())))
        .collect();
    Ok(targets_of(&named))
}

/// Every container (any state) carrying all of `required`.
pub async fn listed(
    docker: &Docker,
    required: &[(String, String)],
) -> Result<Vec<ContainerSummary>, TargetError> {
    let filter: Vec<String> = required.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let filters = HashMap::from([("label".to_string(), filter)]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    Ok(crate::engine::lenient::list_containers(docker, opts)
        .await
        .map_err(|e| EngineError::new("list the containers the --label selector names", e))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_swap_set_aside_belongs_to_the_name_it_was_taken_from() {
        let app = ("app", "bot");
        // The old container, set aside (its own labels only, or an earlier swap's).
        assert_eq!(
            swap_of("bot-3-tr-old-0d4336df", &l(&[app])),
            Some(("bot-3".into(), false))
        );
        assert_eq!(
            swap_of(
                "bot-3-tr-stopped-0d4336df",
                &l(&[app, (labels::TARGET_NAME, "renamed-since")])
            ),
            Some(("bot-3".into(), false))
        );
        // The replacement: the name it is meant to carry.
        let new = l(&[
            app,
            (labels::TARGET_NAME, "bot-3"),
            (labels::REPLACES, "abc"),
        ]);
        assert_eq!(
            swap_of("bot-3-tr-new-0d4336df", &new),
            Some(("bot-3".into(), false))
        );
        assert_eq!(
            swap_of("bot-3-tr-done-0d4336df", &l(&[app])),
            Some(("bot-3".into(), false))
        );
        // A dependent's copy follows its target's swap.
        let dep = l(&[(labels::TARGET_NAME, "side"), (DEPENDENT_OF, "bot-3")]);
        assert_eq!(
            swap_of("side-tr-new-0d4336df", &dep),
            Some(("bot-3".into(), true))
        );
    }

    #[test]
    fn targets_locks_canaries_and_look_alikes_are_no_leftovers() {
        assert_eq!(swap_of("bot-3", &l(&[("app", "bot")])), None);
        assert_eq!(swap_of("bot-3-tr-lock", &l(&[])), None);
        assert_eq!(
            swap_of("bot-3-tr-canary-0d4336df", &l(&[(labels::CANARY, "true")])),
            None
        );
        assert_eq!(swap_of("app-tr-eu", &l(&[])), None);
        assert_eq!(swap_of("bot-tr-old-notahex", &l(&[])), None);
    }

    #[test]
    fn each_target_once_those_with_dependents_first() {
        let found = vec![
            ("bot-5-tr-old-0d4336df".to_string(), l(&[])),
            (
                "bot-5-tr-new-0d4336df".to_string(),
                l(&[(labels::TARGET_NAME, "bot-5")]),
            ),
            ("bot-1".to_string(), l(&[])),
            ("bot-3-tr-old-0d4336df".to_string(), l(&[])),
            (
                "side-tr-new-0d4336df".to_string(),
                l(&[(DEPENDENT_OF, "bot-9")]),
            ),
            ("side-tr-old-0d4336df".to_string(), l(&[])),
        ];
        assert_eq!(targets_of(&found), ["bot-9", "bot-3", "bot-5", "side"]);
    }
}
