use super::*;

fn table(template: Option<&str>, keys: &[&str], params: &[(&str, &str)]) -> TableDef {
    let mut parameters: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(t) = template {
        parameters.insert("storage.location.template".into(), t.into());
    }
    TableDef {
        location: Some("s3://lake/events/".into()),
        partition_keys: keys.iter().map(|k| k.to_string()).collect(),
        parameters,
        ..Default::default()
    }
}

fn projection(template: Option<&str>, keys: &[&str], params: &[(&str, &str)]) -> Projection {
    Projection::of_table(&table(template, keys, params))
        .unwrap()
        .1
}

fn values(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

const TENANT_FIRST: &str = "s3://lake/${tenant}/events/${dt}/";

fn tenant_first() -> Projection {
    projection(
        Some(TENANT_FIRST),
        &["tenant", "dt"],
        &[
            ("projection.tenant.type", "injected"),
            ("projection.dt.type", "date"),
            ("projection.dt.format", "yyyy-MM-dd"),
            ("projection.dt.range", "2024-01-01,NOW"),
        ],
    )
}

#[test]
fn only_keys_the_template_generates_are_the_tables() {
    let (root, ..) =
        Projection::of_table(&table(Some(TENANT_FIRST), &["tenant", "dt"], &[])).unwrap();
    assert_eq!(root, "s3://lake/");
    let p = tenant_first();
    assert_eq!(
        p.values("acme/events/2024-01-01/part-0.json"),
        values(&["acme", "2024-01-01"])
    );
    // Deeper below a partition folder is still in it.
    assert_eq!(
        p.values("acme/events/2024-01-01/sub/part-0.json"),
        values(&["acme", "2024-01-01"])
    );
    // Another table under the same prefix, a folder too shallow, a value spanning two
    // folders, a date the format does not write, a date before the range.
    for key in [
        "acme/orders/2024-01-01/part-0.json",
        "acme/events/part-0.json",
        "acme/events/2024-01-01",
        "acme/x/events/2024-01-01/part-0.json",
        "acme/events/2024-1-1/part-0.json",
        "acme/events/2024-02-30/part-0.json",
        "acme/events/2023-12-31/part-0.json",
        "part-0.json",
    ] {
        assert_eq!(p.values(key), None, "{key}");
    }
    // NOW bounds are open: a partition dated after today is the table's.
    assert_eq!(
        p.values("acme/events/2999-12-31/a.json"),
        values(&["acme", "2999-12-31"])
    );
}

#[test]
fn enum_and_integer_projections_accept_only_their_values() {
    let p = projection(
        Some("s3://lake/t/${country}/h=${hour}/"),
        &["country", "hour"],
        &[
            ("projection.country.type", "enum"),
            ("projection.country.values", "de,fr, us"),
            ("projection.hour.type", "integer"),
            ("projection.hour.range", "0,23"),
            ("projection.hour.digits", "2"),
        ],
    );
    assert_eq!(p.values("fr/h=07/a.parquet"), values(&["fr", "07"]));
    assert_eq!(p.values("us/h=23/a.parquet"), values(&["us", "23"]));
    for key in [
        "it/h=07/a",
        "fr/h=7/a",
        "fr/h=24/a",
        "fr/h=-1/a",
        "fr/h=x/a",
    ] {
        assert_eq!(p.values(key), None, "{key}");
    }
    // No digits: no leading zero; an interval skips values.
    let p = projection(
        Some("s3://lake/t/${n}/"),
        &["n"],
        &[
            ("projection.n.type", "integer"),
            ("projection.n.range", "10, 100"),
            ("projection.n.interval", "5"),
        ],
    );
    assert_eq!(p.values("15/a"), values(&["15"]));
    assert_eq!(p.values("100/a"), values(&["100"]));
    for key in ["015/a", "16/a", "5/a", "105/a"] {
        assert_eq!(p.values(key), None, "{key}");
    }
}

#[test]
fn projections_lethe_cannot_check_take_any_one_folder_value() {
    let notes = |params: &[(&str, &str)]| {
        Projection::of_table(&table(Some("s3://lake/t/${k}/"), &["k"], params))
            .unwrap()
            .2
    };
    for params in [
        &[("projection.k.type", "something_new")][..],
        &[][..],
        &[
            ("projection.k.type", "integer"),
            ("projection.k.range", "a,b"),
        ][..],
        &[
            ("projection.k.type", "date"),
            ("projection.k.format", "EEE yyyy"),
            ("projection.k.range", "x,NOW"),
        ][..],
    ] {
        assert_eq!(notes(params).len(), 1, "{params:?}");
        let p = projection(Some("s3://lake/t/${k}/"), &["k"], params);
        assert_eq!(p.values("anything/a.json"), values(&["anything"]));
        assert_eq!(p.values("a/b/c.json"), values(&["a"]), "a deeper object");
    }
    // Injected keys are what the query names: any value, no note.
    assert!(notes(&[("projection.k.type", "injected")]).is_empty());
}

#[test]
fn a_date_format_with_slashes_spans_as_many_folders() {
    let p = projection(
        Some("s3://lake/logs/${day}/"),
        &["day"],
        &[
            ("projection.day.type", "date"),
            ("projection.day.format", "yyyy/MM/dd"),
            ("projection.day.range", "2020/01/01,2024/12/31"),
        ],
    );
    assert_eq!(p.values("2024/02/29/a.json"), values(&["2024/02/29"]));
    assert_eq!(p.values("2023/02/29/a.json"), None, "no such day");
    assert_eq!(p.values("2025/01/01/a.json"), None, "after the range");
    assert_eq!(p.values("2024/02/a.json"), None, "too shallow");
}

#[test]
fn without_a_template_the_hive_layout_under_the_table_location_is_the_table() {
    let (root, p, _) = Projection::of_table(&table(
        None,
        &["dt", "country"],
        &[
            ("projection.dt.type", "date"),
            ("projection.dt.format", "yyyy-MM-dd HH:mm"),
            ("projection.dt.range", "2024-01-01 00:00,2024-12-31 23:59"),
            ("projection.country.type", "enum"),
            ("projection.country.values", "de,fr"),
        ],
    ))
    .unwrap();
    assert_eq!(root, "s3://lake/events/");
    assert_eq!(
        p.values("dt=2024-03-01 10%3A30/country=fr/a.parquet"),
        values(&["2024-03-01 10:30", "fr"])
    );
    for key in [
        "country=fr/dt=2024-03-01 10%3A30/a.parquet",
        "dt=2024-03-01 10%3A30/a.parquet",
        "dt=2024-03-01 10%3A30/country=it/a.parquet",
        "x/dt=2024-03-01 10%3A30/country=fr/a.parquet",
        "a.parquet",
    ] {
        assert_eq!(p.values(key), None, "{key}");
    }
}

#[test]
fn templates_that_cannot_name_every_key_exactly_are_refused() {
    let refused = |template: &str| {
        Projection::of_table(&table(Some(template), &["a", "b"], &[])).unwrap_err()
    };
    assert!(refused("s3://lake/t/${a}/").contains("${b}"));
    assert!(refused("s3://lake/t/${a}${b}/").contains("adjacent"));
    assert!(refused("s3://lake/t/${a}/${b}/${c}/").contains("no partition key"));
    assert!(refused("s3://lake/t/").contains("names no partition key"));
    // Literals around keys in one folder are fine.
    let p = projection(Some("s3://lake/t/${a}-x-${b}/"), &["a", "b"], &[]);
    assert_eq!(p.values("1-x-2/f"), values(&["1", "2"]));
}

#[test]
fn date_formats_read_exactly_what_athena_writes() {
    let f = DateFormat::parse("yyyyMMdd'T'HH").unwrap();
    assert_eq!(f.read("20240229T07"), Some([2024, 2, 29, 7, 0, 0]));
    assert_eq!(f.read("2024229T07"), None);
    assert_eq!(f.read("20240229T7"), None);
    let f = DateFormat::parse("yy-M-d").unwrap();
    assert_eq!(f.read("24-3-9"), Some([2024, 3, 9, 0, 0, 0]));
    assert_eq!(f.read("24-03-9"), None);
    assert_eq!(f.read("24-12-31"), Some([2024, 12, 31, 0, 0, 0]));
    assert_eq!(DateFormat::parse("yyyy-MMM"), None, "month names");
    assert_eq!(DateFormat::parse("yMd"), None, "ambiguous widths");
    let f = DateFormat::parse("yyyy-MM").unwrap();
    assert_eq!(f.bound("NOW-3YEARS"), Some(None));
    assert_eq!(f.bound("2024-13"), None);
}

#[test]
fn split_gives_the_part_below_the_generated_partition_location() {
    let p = tenant_first();
    let (v, below) = p
        .split("acme/events/2024-01-01/_temporary/0/part-0.json")
        .expect("the table's");
    assert_eq!(Some(v), values(&["acme", "2024-01-01"]));
    assert_eq!(below, "_temporary/0/part-0.json");
    // A template literal starting with `_` is part of the location, not below it.
    let q = projection(
        Some("s3://lake/${tenant}/_events/"),
        &["tenant"],
        &[("projection.tenant.type", "injected")],
    );
    assert_eq!(q.split("acme/_events/a.json").unwrap().1, "a.json");
    assert_eq!(p.split("acme/orders/a.json"), None);
}
