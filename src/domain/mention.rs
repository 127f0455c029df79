//! The mention rules: `{{userId}}` tokens in a text, and the placeholder that replaces an erased
//! user's.

/// The text that replaces a mention of an erased user: it carries nothing of them.
pub const MENTION_PLACEHOLDER: &str = "[deleted user]";

/// The mention tokens `{{userId}}` of a text, in order. A token ends at the first `}}`.
pub fn mention_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        tokens.push(&after[..end]);
        rest = &after[end + 2..];
    }
    tokens
}

/// `text` with every mention token of `user_id` replaced by the neutral placeholder.
pub fn without_mention(text: &str, user_id: &str) -> String {
    text.replace(&format!("{{{{{user_id}}}}}"), MENTION_PLACEHOLDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_tokens_are_found_in_order() {
        assert_eq!(mention_tokens("hi {{u1}} and {{u 2}}!"), ["u1", "u 2"]);
        assert!(mention_tokens("{{unclosed").is_empty());
    }

    #[test]
    fn removing_a_mention_leaves_ids_sharing_its_prefix() {
        assert_eq!(
            without_mention("{{u1}} {{u10}}", "u1"),
            "[deleted user] {{u10}}"
        );
    }
}
