//! The conformance suite on [`ReferenceStorage`], which implements only the required
//! storage core: proves that every strategy works through compare-and-set alone.

use limiter_conformance::ReferenceStorage;

limiter_conformance::suite!(ReferenceStorage::new());

/// The list and the generated tests agree on the count.
#[test]
fn case_list_is_consistent() {
    let list = limiter_conformance::cases::LIST;
    let mut names: Vec<&str> = list.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), list.len(), "duplicate case names");
    assert_eq!(
        list.iter().filter(|c| c.exclusive).count(),
        1,
        "exactly one exclusive case (clear_all)"
    );
    assert!(limiter_conformance::cases::tests_per_storage() > 200);
}
