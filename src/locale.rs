//! Texts in every language (SPEC §9): the shipped `locales/*.toml` compiled in,
//! optional overrides from `locales-dir`, per-key fallback to English, and
//! `{name}` placeholder filling. Pure after loading; knows nothing of Telegram.

use std::collections::HashMap;
use std::path::Path;

/// The shipped languages, in the order `setMyCommands` registers them.
pub const SHIPPED: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.toml")),
    ("ru", include_str!("../locales/ru.toml")),
    ("de", include_str!("../locales/de.toml")),
    ("es", include_str!("../locales/es.toml")),
];

/// All loaded languages; `en` is always present and complete.
#[derive(Debug, Clone)]
pub struct Locales {
    langs: HashMap<String, HashMap<String, String>>,
    default: String,
}

impl Locales {
    /// Loads the shipped files, then every `<code>.toml` in `dir` over them.
    /// Returns warnings (unreadable override files, unknown default) beside the result.
    pub fn load(dir: Option<&Path>, default: &str) -> Result<(Locales, Vec<String>), String> {
        let mut langs = HashMap::new();
        for (code, text) in SHIPPED {
            let map = parse(text).map_err(|e| format!("shipped locale {code}: {e}"))?;
            langs.insert((*code).to_string(), map);
        }
        let mut warnings = Vec::new();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("locales-dir {}: cannot be read: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let Some(code) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let code = code.to_lowercase();
                let parsed = std::fs::read_to_string(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|text| parse(&text));
                match parsed {
                    Ok(map) => {
                        let checked = checked_override(&langs, &code, map, &path, &mut warnings);
                        let lang = langs.entry(code).or_default();
                        for (key, text) in checked {
                            match text {
                                Some(text) => lang.insert(key, text),
                                // Broken: English instead of a text Telegram refuses.
                                None => lang.remove(&key),
                            };
                        }
                    }
                    Err(e) => {
                        warnings.push(format!("locale file {}: {e}; ignored", path.display()))
                    }
                }
            }
        }
        let mut default = default.to_lowercase();
        if !langs.contains_key(&default) {
            let mut known: Vec<&str> = langs.keys().map(String::as_str).collect();
            known.sort_unstable();
            warnings.push(format!(
                "locale '{default}' has no locale file (known: {}); using en",
                known.join(", ")
            ));
            default = "en".into();
        }
        Ok((Locales { langs, default }, warnings))
    }

    /// The language for a Telegram user: their `language_code` if we have it
    /// (`de-AT` → `de`), else the configured default.
    pub fn pick<'a>(&'a self, language_code: Option<&str>) -> &'a str {
        if let Some(code) = language_code {
            let code = code.to_lowercase();
            let primary = code.split(['-', '_']).next().unwrap_or("");
            for candidate in [code.as_str(), primary] {
                if let Some((key, _)) = self.langs.get_key_value(candidate) {
                    return key;
                }
            }
        }
        &self.default
    }

    /// The texts of one language.
    pub fn tr<'a>(&'a self, lang: &'a str) -> Tr<'a> {
        Tr {
            locales: self,
            lang,
        }
    }

    /// The configured default language.
    pub fn default_lang(&self) -> &str {
        &self.default
    }

    /// The raw template of `key` in `lang`, falling back to English, then to the key.
    pub fn text<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.langs
            .get(lang)
            .and_then(|m| m.get(key))
            .or_else(|| self.langs.get("en").and_then(|m| m.get(key)))
            .map(String::as_str)
            .unwrap_or(key)
    }

    /// The template with `{name}` placeholders replaced. Values are inserted as
    /// given: callers escape HTML before passing dynamic text.
    pub fn fill(&self, lang: &str, key: &str, args: &[(&str, &str)]) -> String {
        fill(self.text(lang, key), args)
    }
}

/// An override whose HTML tags differ from the shipped text of the same key
/// (in its language, else English) would make Telegram refuse every message
/// built from it: such keys are warned about and become `None` (English).
fn checked_override(
    shipped: &HashMap<String, HashMap<String, String>>,
    code: &str,
    map: HashMap<String, String>,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Vec<(String, Option<String>)> {
    let reference = |key: &str| {
        shipped
            .get(code)
            .and_then(|m| m.get(key))
            .or_else(|| shipped.get("en").and_then(|m| m.get(key)))
            .map(|t| tags(t))
    };
    let mut keys: Vec<(String, String)> = map.into_iter().collect();
    keys.sort();
    keys.into_iter()
        .map(|(key, text)| {
            let found = tags(&text);
            let fine = match reference(&key) {
                Some(expected) => found == expected,
                None => balanced(&found),
            };
            if fine {
                (key, Some(text))
            } else {
                warnings.push(format!(
                    "locale file {}: '{key}' has HTML tags [{}] unlike the shipped text; \
                     English is used for it",
                    path.display(),
                    found.join(" ")
                ));
                (key, None)
            }
        })
        .collect()
}

/// The HTML tags of a template in order: `b`, `/b`, `a`, … (attributes dropped).
fn tags(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let end = after.find('>').unwrap_or(after.len());
        let name: String = after[..end]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        found.push(name.to_lowercase());
        rest = &after[end.min(after.len())..];
    }
    found
}

/// Every opening tag closed in order (for keys we do not ship).
fn balanced(tags: &[String]) -> bool {
    let mut open: Vec<&str> = Vec::new();
    for tag in tags {
        match tag.strip_prefix('/') {
            Some(name) => {
                if open.pop() != Some(name) {
                    return false;
                }
            }
            None => open.push(tag),
        }
    }
    open.is_empty()
}

/// Replaces `{name}` by its value; unknown placeholders stay as they are.
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholders a template uses, sorted.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        names.push(after[..close].to_string());
        rest = &after[close + 1..];
    }
    names.sort();
    names.dedup();
    names
}

fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
    let mut map = HashMap::new();
    for (key, value) in table {
        match value {
            toml::Value::String(s) => {
                map.insert(key, s);
            }
            _ => return Err(format!("key '{key}' must be a string")),
        }
    }
    Ok(map)
}

/// Texts in one language.
#[derive(Clone, Copy)]
pub struct Tr<'a> {
    pub locales: &'a Locales,
    pub lang: &'a str,
}

impl<'a> Tr<'a> {
    pub fn t(&self, key: &'a str) -> &'a str {
        self.locales.text(self.lang, key)
    }
    pub fn f(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.locales.fill(self.lang, key, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_with_other_tags_fall_back_to_english() {
        let dir = std::env::temp_dir().join(format!("tcb-locale-tags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("de.toml"),
            "alert_down = \"🔴 <b>{name} ist AUSGEFALLEN: {reason}.\"\n\
             alert_up = \"🟢 <b>{name}</b> läuft wieder ({duration}).\"\n\
             extra = \"<i>fine</i>\"\nextra_broken = \"<b>x\"\n",
        )
        .unwrap();
        let (locales, warnings) = Locales::load(Some(&dir), "en").unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("'alert_down' has HTML tags [b]"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("'extra_broken'"), "{warnings:?}");
        let en_down = locales.text("en", "alert_down");
        assert_eq!(locales.text("de", "alert_down"), en_down, "English instead");
        assert_eq!(
            locales.text("de", "alert_up"),
            "🟢 <b>{name}</b> läuft wieder ({duration})."
        );
        assert_eq!(locales.text("de", "extra"), "<i>fine</i>");
        assert_eq!(locales.text("de", "extra_broken"), "extra_broken");
    }

    #[test]
    fn every_shipped_file_has_the_keys_and_placeholders_of_english() {
        let en = parse(SHIPPED[0].1).unwrap();
        for (code, text) in SHIPPED {
            let map = parse(text).unwrap_or_else(|e| panic!("{code}: {e}"));
            let mut missing: Vec<&String> = en.keys().filter(|k| !map.contains_key(*k)).collect();
            let mut extra: Vec<&String> = map.keys().filter(|k| !en.contains_key(*k)).collect();
            missing.sort();
            extra.sort();
            assert!(missing.is_empty(), "{code} lacks {missing:?}");
            assert!(extra.is_empty(), "{code} has keys English lacks: {extra:?}");
            for (key, template) in &en {
                assert_eq!(
                    placeholders(&map[key]),
                    placeholders(template),
                    "{code}.{key} placeholders differ from English"
                );
                assert!(!map[key].trim().is_empty(), "{code}.{key} is empty");
            }
        }
    }

    #[test]
    fn fill_replaces_known_and_keeps_unknown() {
        assert_eq!(fill("a {x} b {y} {", &[("x", "1")]), "a 1 b {y} {");
    }

    #[test]
    fn language_choice_falls_back() {
        let (l, w) = Locales::load(None, "de").unwrap();
        assert!(w.is_empty());
        assert_eq!(l.pick(Some("ru")), "ru");
        assert_eq!(l.pick(Some("es-MX")), "es");
        assert_eq!(l.pick(Some("fr")), "de");
        assert_eq!(l.pick(None), "de");
        let (l, w) = Locales::load(None, "fr").unwrap();
        assert_eq!(l.default_lang(), "en");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn override_dir_adds_languages_and_falls_back_per_key() {
        let dir = std::env::temp_dir().join(format!("tcb-locale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fr.toml"), "help_title = \"Aide\"\n").unwrap();
        std::fs::write(dir.join("bad.toml"), "x = [").unwrap();
        let (l, w) = Locales::load(Some(&dir), "fr").unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(l.default_lang(), "fr");
        assert_eq!(l.text("fr", "help_title"), "Aide");
        assert_eq!(l.text("fr", "back"), l.text("en", "back"));
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
