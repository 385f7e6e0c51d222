-- `/voice forget` finds what one person set.
CREATE INDEX guild_settings_updated_by ON guild_settings (updated_by);
-- Written once at every start, so a database that cannot take writes is found then, not at
-- the first `/voice settings set`.
CREATE TABLE storage_check (
    id INTEGER PRIMARY KEY,
    opened_at BIGINT NOT NULL
);
