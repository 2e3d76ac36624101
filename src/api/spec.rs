//! Touch-ups of the generated OpenAPI document so client generators produce plain named
//! types. utoipa renders an internally tagged enum (`#[serde(tag = "kind")]`) as a `oneOf`
//! of anonymous objects — inline objects for struct variants, `allOf [$ref, {tag}]` for
//! newtype variants — which generators turn into `Target_type_0`, `Target_type_1`, …
//! Here every variant becomes a named component holding its tag property: inline
//! variants are hoisted as `{Enum}{Value}` (`TargetColumns`, `TargetTable`, …), newtype
//! variants get the tag merged into the schema they reference (`GlueTable`), and the
//! `oneOf` gets a discriminator mapping tag values to them.

use utoipa::openapi::schema::{Discriminator, Object, Schema};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// A `oneOf` item of a tagged enum: the object carrying the tag, and the component a
/// newtype variant refers to.
struct Variant {
    tagged: Object,
    refers_to: Option<String>,
}

fn variant(item: &RefOr<Schema>) -> Option<Variant> {
    match item {
        RefOr::T(Schema::Object(object)) => Some(Variant {
            tagged: object.clone(),
            refers_to: None,
        }),
        RefOr::T(Schema::AllOf(all)) => match all.items.as_slice() {
            [RefOr::Ref(r), RefOr::T(Schema::Object(tag))] => Some(Variant {
                tagged: tag.clone(),
                refers_to: Some(r.ref_location.rsplit('/').next()?.to_owned()),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// Names the variants of every internally tagged `oneOf` component schema.
pub fn name_tagged_variants(spec: &mut OpenApi) {
    let Some(components) = spec.components.as_mut() else {
        return;
    };
    // (component, schema to add) for inline variants; (component, tag) to merge for
    // newtype variants.
    let mut hoisted = Vec::new();
    let mut merged = Vec::new();
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else {
            continue;
        };
        let Some(variants) = one_of.items.iter().map(variant).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let Some((tag, values)) = tag_of(&variants) else {
            continue;
        };
        let mut discriminator = Discriminator::new(&tag);
        for ((item, v), value) in one_of.items.iter_mut().zip(variants).zip(values) {
            let component = match v.refers_to {
                Some(target) => {
                    merged.push((target.clone(), tag.clone(), v.tagged));
                    target
                }
                None => {
                    let hoist = format!("{name}{}", pascal_case(&value));
                    hoisted.push((hoist.clone(), RefOr::T(Schema::Object(v.tagged))));
                    hoist
                }
            };
            *item = Ref::from_schema_name(&component).into();
            discriminator
                .mapping
                .insert(value, format!("#/components/schemas/{component}"));
        }
        one_of.discriminator = Some(discriminator);
    }
    components.schemas.extend(hoisted);
    for (target, tag, tagged) in merged {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&target) {
            object.properties.extend(tagged.properties);
            object.required.insert(0, tag);
        }
    }
}

/// The tag property shared by every variant, and each variant's value: a property that
/// is required and a one-value string enum in every variant.
fn tag_of(variants: &[Variant]) -> Option<(String, Vec<String>)> {
    let first = &variants.first()?.tagged;
    first.required.iter().find_map(|tag| {
        let values = variants
            .iter()
            .map(|v| match v.tagged.properties.get(tag)? {
                RefOr::T(Schema::Object(p)) if v.tagged.required.contains(tag) => {
                    match p.enum_values.as_deref() {
                        Some([serde_json::Value::String(value)]) => Some(value.clone()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some((tag.clone(), values))
    })
}

fn pascal_case(value: &str) -> String {
    value
        .split(['_', '-'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_enum_variants_become_named_schemas_with_a_discriminator() {
        let json = serde_json::to_value(crate::api::openapi()).unwrap();
        let schemas = &json["components"]["schemas"];
        let target = &schemas["Target"];
        assert_eq!(target["discriminator"]["propertyName"], "kind");
        assert_eq!(
            target["discriminator"]["mapping"]["all_columns_except"],
            "#/components/schemas/TargetAllColumnsExcept"
        );
        assert_eq!(
            target["oneOf"][3]["$ref"],
            "#/components/schemas/TargetColumns"
        );
        assert_eq!(schemas["TargetColumns"]["required"][0], "columns");
        assert_eq!(
            schemas["TargetTable"]["properties"]["kind"]["enum"][0],
            "table"
        );
        // Newtype variants: the referenced schema gains the tag.
        assert_eq!(
            schemas["CatalogRef"]["oneOf"][0]["$ref"],
            "#/components/schemas/GlueTable"
        );
        assert_eq!(
            schemas["CatalogRef"]["discriminator"]["mapping"]["path"],
            "#/components/schemas/PathTable"
        );
        assert_eq!(schemas["GlueTable"]["required"][0], "provider");
        assert_eq!(
            schemas["PathTable"]["properties"]["provider"]["enum"][0],
            "path"
        );
    }

    #[test]
    fn pascal_case_joins_snake_and_kebab_words() {
        assert_eq!(pascal_case("all_columns_except"), "AllColumnsExcept");
        assert_eq!(pascal_case("glue"), "Glue");
        assert_eq!(pascal_case("a-b"), "AB");
    }
}
