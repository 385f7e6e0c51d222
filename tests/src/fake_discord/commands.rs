//! Interactions with options: a user runs any command (`/voice-settings set language de`)
//! with the permissions Discord would compute for them, as the interaction's member carries.

use serde_json::{json, Value};

use super::{model, random_hex, FakeDiscord, InteractionRecord, APPLICATION_ID, COMMAND_ID};

impl FakeDiscord {
    /// `user` runs `/<command> <subcommand> [name: value…]` in the guild's first text channel,
    /// with `permissions` (Discord's bit set) as their computed permissions; the interaction id.
    pub fn command_with(
        &self,
        guild: u64,
        user: u64,
        command: &str,
        subcommand: &str,
        options: &[(&str, &str)],
        permissions: u64,
    ) -> u64 {
        let mut w = self.shared.lock();
        let id = w.next_id();
        let token = format!("itk.{}", random_hex(24));
        let g = w.guilds.get(&guild).expect("a known guild");
        let channel = g
            .channels
            .iter()
            .find(|c| c.kind == 0)
            .expect("a text channel")
            .clone();
        let u = g.members.get(&user).expect("a member of the guild");
        let member = model::member(guild, u, Some(permissions));
        let mut data = model::command_interaction(
            id,
            &token,
            APPLICATION_ID,
            COMMAND_ID,
            guild,
            &channel,
            member,
            subcommand,
        );
        let options: Vec<Value> = options
            .iter()
            .map(|(name, value)| json!({"name": name, "type": 3, "value": value}))
            .collect();
        data["data"]["name"] = json!(command);
        data["data"]["options"] = json!([{"name": subcommand, "type": 1, "options": options}]);
        w.interactions.insert(
            id,
            InteractionRecord {
                id,
                token,
                guild,
                user,
                subcommand: format!("{command} {subcommand}"),
                callbacks: Vec::new(),
                edits: Vec::new(),
                followups: Vec::new(),
                sent: std::time::Instant::now(),
            },
        );
        assert!(
            w.dispatch(guild, "INTERACTION_CREATE", data),
            "no gateway connection serves guild {guild}"
        );
        id
    }
}
