//! What every long-lived thread reads: the settings and the texts (never
//! changed after start) and the state store (changed only through its own
//! lock). Nothing else is shared: channels, clients and the press log are
//! handed to each thread by `run` as it needs them.

use crate::config::Settings;
use crate::locale::{Locales, Tr};
use crate::state::{StateData, Store};
use crate::telegram::{Place, User};

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

    /// Where a pushed message goes: each of `people`'s private chats, then
    /// every alert chat (followed to its supergroup if it moved).
    pub fn recipients(&self, d: &StateData, people: &[i64]) -> Vec<Place> {
        let mut places: Vec<Place> = people.iter().map(|&id| Place::chat(id)).collect();
        for alert in &self.settings.alert_chats {
            let mut place = Place::from(alert);
            if let Some(&to) = d.moved_chats.get(&place.chat) {
                place = Place {
                    chat: to,
                    thread: place.thread,
                };
            }
            if !places.contains(&place) {
                places.push(place);
            }
        }
        places
    }

    pub fn tr<'a>(&'a self, lang: &'a str) -> Tr<'a> {
        self.locales.tr(lang)
    }
}
