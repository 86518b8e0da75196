//! The connection phase: the server greeting, the client's handshake
//! response, the switch to `mysql_native_password` when a client asks for
//! another plugin, and the password check. Nothing here reads a command.

use super::auth;
use super::codes;
use super::packets;
use super::wire::{ConnError, Wire};
use super::FrontState;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use std::time::Duration;

/// What sluice says it is: MariaDB clients look for "-MariaDB", old clients
/// need the "5.5.5-" prefix MariaDB itself sends.
pub const SERVER_VERSION: &str = "5.5.5-10.11.0-MariaDB-sluice";
const NATIVE: &[u8] = b"mysql_native_password";
/// utf8mb4_general_ci
const DEFAULT_COLLATION: u8 = 45;

fn capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_FOUND_ROWS
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_IGNORE_SPACE
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_SESSION_TRACK
}

/// A client that passed the connection phase.
pub struct Greeted {
    /// The salt of its scramble (COM_CHANGE_USER is checked against it).
    pub salt: [u8; 20],
    /// The database named in the handshake, if any.
    pub db: Option<String>,
    /// The character set of the collation the client asked for in its
    /// handshake (`None`: one MariaDB does not know, so the server's
    /// default, as MariaDB does).
    pub charset: Option<String>,
    /// The client asked for `CLIENT_FOUND_ROWS`: an UPDATE's affected rows
    /// are the rows it matched.
    pub found_rows: bool,
    /// The client asked for `CLIENT_SESSION_TRACK`: OK packets say which
    /// session state a statement changed.
    pub session_track: bool,
}

/// The character set of handshake collation `id`, if MariaDB knows it.
/// Ids up to 254 mean the same to MariaDB and MySQL; 255 and above are
/// MySQL's own (`utf8mb4_0900_ai_ci`), which MariaDB replaces by its
/// default.
pub fn handshake_charset(id: u8) -> Option<String> {
    if id == 0 || id == 255 {
        return None;
    }
    let c = Collation::resolve(CollationId::from(u16::from(id)));
    (c.id() != CollationId::UNKNOWN_COLLATION_ID).then(|| c.charset().to_string())
}

/// Greet the client, read its handshake response and authenticate it; on
/// failure the client has been sent its error.
pub async fn greet(
    wire: &mut Wire,
    state: &FrontState,
    conn_id: u32,
) -> Result<Greeted, ConnError> {
    let salt = auth::new_salt();
    let mut part2 = salt[8..].to_vec();
    part2.push(0);
    let hello = HandshakePacket::new(
        10,
        SERVER_VERSION.as_bytes(),
        conn_id,
        salt[..8].try_into().expect("8 bytes"),
        Some(part2),
        capabilities(),
        DEFAULT_COLLATION,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(NATIVE),
    );
    let mut buf = Vec::new();
    hello.serialize(&mut buf);
    wire.send(buf).await?;
    wire.flush().await?;

    let pkt = tokio::time::timeout(Duration::from_secs(10), wire.read())
        .await
        .map_err(|_| ConnError::HandshakeTimeout)??;
    let resp = match HandshakeResponse::deserialize((), &mut ParseBuf(&pkt.payload)) {
        Ok(r) => r,
        Err(e) => {
            wire.send(packets::err(codes::HANDSHAKE_ERROR, "Bad handshake"))
                .await?;
            wire.flush().await?;
            return Err(ConnError::Malformed(e.to_string()));
        }
    };
    if !resp
        .capabilities()
        .contains(CapabilityFlags::CLIENT_PROTOCOL_41)
    {
        wire.send(packets::err(
            codes::HANDSHAKE_ERROR,
            "Bad handshake: the 4.1 protocol is required",
        ))
        .await?;
        wire.flush().await?;
        return Err(ConnError::Malformed(
            "client without CLIENT_PROTOCOL_41".into(),
        ));
    }
    let user = String::from_utf8_lossy(resp.user()).to_string();
    let db = resp
        .db_name()
        .map(|d| String::from_utf8_lossy(d).to_string())
        .filter(|d| !d.is_empty());
    let mut token = resp.scramble_buf().to_vec();
    let native = matches!(
        resp.auth_plugin(),
        None | Some(AuthPlugin::MysqlNativePassword)
    );
    if !native {
        // Ask the client to switch to mysql_native_password with our salt.
        let mut data = salt.to_vec();
        data.push(0);
        let mut buf = Vec::new();
        AuthSwitchRequest::new(NATIVE, data).serialize(&mut buf);
        wire.send(buf).await?;
        wire.flush().await?;
        let p = tokio::time::timeout(Duration::from_secs(10), wire.read())
            .await
            .map_err(|_| ConnError::HandshakeTimeout)??;
        token = p.payload.to_vec();
    }
    authenticate(wire, state, &salt, user, &token).await?;
    Ok(Greeted {
        salt,
        db,
        charset: handshake_charset(resp.collation()),
        found_rows: resp
            .capabilities()
            .contains(CapabilityFlags::CLIENT_FOUND_ROWS),
        session_track: resp
            .capabilities()
            .contains(CapabilityFlags::CLIENT_SESSION_TRACK),
    })
}

/// Check `token` for `user` against the configured hashes; on failure send
/// MariaDB's access-denied error (1045) and end the connection.
pub async fn authenticate(
    wire: &mut Wire,
    state: &FrontState,
    salt: &[u8],
    user: String,
    token: &[u8],
) -> Result<(), ConnError> {
    let ok = state
        .cfg
        .users
        .iter()
        .any(|(name, hash)| *name == user && auth::verify(salt, token, hash));
    if ok {
        return Ok(());
    }
    let using = if token.is_empty() { "NO" } else { "YES" };
    let msg = format!("Access denied for user '{user}'@'sluice' (using password: {using})");
    wire.send(packets::err(codes::ACCESS_DENIED, &msg)).await?;
    wire.flush().await?;
    Err(ConnError::Auth(user))
}
