//! The README states the configuration as the code declares it.

#[test]
fn the_readme_configuration_reference_matches_the_code() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("<!-- config-reference:start -->\n")
        .expect("start marker")
        + 32;
    let end = readme
        .find("<!-- config-reference:end -->")
        .expect("end marker");
    assert_eq!(
        &readme[start..end],
        sluice::config::reference_markdown(),
        "README configuration reference is stale: regenerate it with `sluice config-reference`"
    );
}
