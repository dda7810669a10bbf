//! What every long-lived thread reads: the settings and the texts (never
//! changed after start) and the state store (changed only through its own
//! lock). Nothing else is shared: channels, clients and the press log are
//! handed to each thread by `run` as it needs them.

use crate::config::Settings;
use crate::locale::{Locales, Tr};
use crate::state::{StateData, Store};
use crate::telegram::User;

pub struct Shared {
    pub settings: Settings,
    pub locales: Locales,
    pub store: Store,
}

impl Shared {
    /// The language for a user: their Telegram language if we ship it.
    pub fn lang_of(&self, user: &User) -> String {
        self.locales.pick(user.language_code.as_deref()).to_string()
    }

    /// The texts for a chat that gets a pushed message: the language its
    /// user last wrote in, else the default.
    pub fn tr_for<'a>(&'a self, d: &StateData, chat: i64) -> Tr<'a> {
        let lang = self
            .locales
            .pick(d.languages.get(&chat).map(String::as_str));
        self.locales.tr(lang)
    }

    pub fn tr<'a>(&'a self, lang: &'a str) -> Tr<'a> {
        self.locales.tr(lang)
    }
}
