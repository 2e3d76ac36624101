//! Touch-ups of the generated OpenAPI document so client generators produce plain named
//! types: utoipa renders an internally tagged enum (`#[serde(tag = "kind")]`) as `oneOf`
//! anonymous inline objects, which generators turn into `Target_type_0`, `Target_type_1`,
//! … Each such variant becomes a named component (`TargetColumns`, `TargetTable`, …)
//! and the `oneOf` gets a discriminator mapping its tag values to them.

use utoipa::openapi::schema::{Discriminator, Schema};
use utoipa::openapi::{OpenApi, Ref, RefOr};

/// Names the inline variants of every internally tagged `oneOf` component schema.
pub fn name_tagged_variants(spec: &mut OpenApi) {
    let Some(components) = spec.components.as_mut() else {
        return;
    };
    let mut hoisted = Vec::new();
    for (name, schema) in components.schemas.iter_mut() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else {
            continue;
        };
        let Some((tag, values)) = tag_of(&one_of.items) else {
            continue;
        };
        let mut discriminator = Discriminator::new(tag);
        for (item, value) in one_of.items.iter_mut().zip(values) {
            let variant = format!("{name}{}", pascal_case(&value));
            let inline = std::mem::replace(item, Ref::from_schema_name(&variant).into());
            discriminator
                .mapping
                .insert(value, format!("#/components/schemas/{variant}"));
            hoisted.push((variant, inline));
        }
        one_of.discriminator = Some(discriminator);
    }
    components.schemas.extend(hoisted);
}

/// The tag property shared by every inline object variant, and each variant's value:
/// a property that is required and a one-value string enum in every variant.
fn tag_of(items: &[RefOr<Schema>]) -> Option<(String, Vec<String>)> {
    let objects: Vec<_> = items
        .iter()
        .map(|item| match item {
            RefOr::T(Schema::Object(object)) => Some(object),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let first = objects.first()?;
    first.required.iter().find_map(|tag| {
        let values = objects
            .iter()
            .map(|object| match object.properties.get(tag)? {
                RefOr::T(Schema::Object(p)) if object.required.contains(tag) => {
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
        // A oneOf of references is left as it is.
        assert_eq!(
            schemas["CatalogRef"]["oneOf"][0]["$ref"],
            "#/components/schemas/GlueTable"
        );
    }

    #[test]
    fn pascal_case_joins_snake_and_kebab_words() {
        assert_eq!(pascal_case("all_columns_except"), "AllColumnsExcept");
        assert_eq!(pascal_case("glue"), "Glue");
        assert_eq!(pascal_case("a-b"), "AB");
    }
}
