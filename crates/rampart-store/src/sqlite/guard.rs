//! Bans and known logins for the guard.

use rusqlite::{Connection, params};

use crate::{Ban, Result};

pub fn bans(conn: &Connection) -> Result<Vec<Ban>> {
    let mut stmt = conn.prepare("SELECT net, until, reason, offenses, updated FROM bans ORDER BY until DESC")?;
    let rows = stmt
        .query_map([], |r| Ok(Ban { net: r.get(0)?, until: r.get(1)?, reason: r.get(2)?, offenses: r.get(3)?, updated: r.get(4)? }))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn ban_put(conn: &Connection, ban: &Ban) -> Result<()> {
    conn.execute(
        "INSERT INTO bans (net, until, reason, offenses, updated) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (net) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
         offenses = excluded.offenses, updated = excluded.updated",
        params![ban.net, ban.until, ban.reason, ban.offenses, ban.updated],
    )?;
    Ok(())
}
