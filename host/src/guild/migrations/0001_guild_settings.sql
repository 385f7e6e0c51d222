-- One row per (guild, setting) a guild changed; settings without a row follow the config.
-- updated_by is the keyed hash of the user who set it (never a raw Discord id).
CREATE TABLE guild_settings (
    guild_id BIGINT NOT NULL,
    setting TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, setting)
);
