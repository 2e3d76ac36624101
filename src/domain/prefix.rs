//! Key prefixes as folders: a table's location prefix `people` covers `people/…`, never
//! `people-archive/…`. Listing a table's objects and the IAM policies Lethe generates for
//! it must agree on this, so both take it from here.

/// A prefix that names a directory: ends with `/` (unless empty).
pub fn dir_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_becomes_a_folder_once_and_the_root_stays_empty() {
        assert_eq!(dir_prefix("people"), "people/");
        assert_eq!(dir_prefix("people/"), "people/");
        assert_eq!(dir_prefix("a/b"), "a/b/");
        assert_eq!(dir_prefix(""), "");
    }
}
