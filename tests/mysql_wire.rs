//! The MySQL front at the packet level: malformed and oversized packets get
//! an error and a closed connection (never a panic, and the server keeps
//! serving), unknown commands get an error packet, COM_SET_OPTION and
//! COM_RESET_CONNECTION are answered; the OK packets of a client that
//! tracks session state say what MariaDB's say.

mod support;

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "wire-secret";

async fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h))
        .await
        .ok()?
        .ok()?;
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.ok()?;
    Some((h[3], p))
}

async fn write_packet(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut b = len.to_le_bytes()[..3].to_vec();
    b.push(seq);
    b.extend_from_slice(payload);
    s.write_all(&b).await.unwrap();
}

/// Connect and authenticate by hand.
async fn login(port: u16) -> TcpStream {
    login_as(port, PASSWORD, CapabilityFlags::empty()).await
}

/// Connect as `app` with `password`, asking for the capabilities `extra`
/// on top of the 4.1 protocol's.
async fn login_as(port: u16, password: &str, extra: CapabilityFlags) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (_, greeting) = read_packet(&mut s).await.unwrap();
    let hello = HandshakePacket::deserialize((), &mut ParseBuf(&greeting)).unwrap();
    let nonce = hello.nonce();
    let token = mysql_common::scramble::scramble_native(&nonce, password.as_bytes()).unwrap();
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | extra;
    let resp = HandshakeResponse::new(
        Some(token.to_vec()),
        (10, 11, 0),
        Some(b"app".to_vec()),
        None::<Vec<u8>>,
        Some(mysql_common::packets::AuthPlugin::MysqlNativePassword),
        caps,
        None,
        1 << 24,
    );
    let mut buf = Vec::new();
    resp.serialize(&mut buf);
    write_packet(&mut s, 1, &buf).await;
    let (_, ok) = read_packet(&mut s).await.unwrap();
    assert_eq!(ok[0], 0x00, "login failed: {ok:?}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_get_errors_and_the_server_keeps_serving() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        enable_mysql_front(raw, PASSWORD, "30s");
        raw.mysql_max_packet = Some("64KiB".into());
    })
    .await;
    let port = s.running.as_ref().unwrap().mysql_addr.unwrap().port();

    // Garbage instead of a handshake response: an error, then the connection closes.
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    read_packet(&mut c).await.unwrap();
    write_packet(&mut c, 1, b"\x01\x02garbage").await;
    let (_, err) = read_packet(&mut c).await.expect("an error packet");
    assert_eq!(err[0], 0xff);
    assert!(
        read_packet(&mut c).await.is_none(),
        "the connection must close"
    );

    let mut c = login(port).await;
    // COM_INIT_DB: a known database is OK, an unknown one is MariaDB's error.
    write_packet(&mut c, 0, b"\x02app").await;
    assert_eq!(read_packet(&mut c).await.unwrap().1[0], 0x00);
    write_packet(&mut c, 0, b"\x02no_such_db").await;
    let (_, err) = read_packet(&mut c).await.unwrap();
    assert_eq!((err[0], u16::from_le_bytes([err[1], err[2]])), (0xff, 1044));
    // COM_SET_OPTION is answered with EOF.
    write_packet(&mut c, 0, &[0x1b, 0x00, 0x00]).await;
    assert_eq!(read_packet(&mut c).await.unwrap().1[0], 0xfe);
    // COM_RESET_CONNECTION is answered with OK.
    write_packet(&mut c, 0, &[0x1f]).await;
    assert_eq!(read_packet(&mut c).await.unwrap().1[0], 0x00);
    // An unknown command gets an error packet, and the connection stays usable.
    write_packet(&mut c, 0, &[0x20]).await;
    let (_, err) = read_packet(&mut c).await.unwrap();
    assert_eq!(err[0], 0xff);
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1047);
    write_packet(&mut c, 0, &[0x0e]).await; // COM_PING
    assert_eq!(read_packet(&mut c).await.unwrap().1[0], 0x00);
    // A truncated COM_STMT_EXECUTE: an error and a closed connection.
    write_packet(&mut c, 0, &[0x17, 0x01]).await;
    assert_eq!(read_packet(&mut c).await.unwrap().1[0], 0xff);
    assert!(read_packet(&mut c).await.is_none());

    // A packet over max_allowed_packet: error 1153, connection closed, nothing buffered.
    let mut c = login(port).await;
    let mut big = vec![0x03];
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    write_packet(&mut c, 0, &big).await;
    let (_, err) = read_packet(&mut c).await.unwrap();
    assert_eq!(u16::from_le_bytes([err[1], err[2]]), 1153);

    // After all that, a stock client still works.
    let opts = mysql_async::Opts::from_url(&format!("mysql://app:{PASSWORD}@127.0.0.1:{port}/app"))
        .unwrap();
    let mut ok =
        mysql_async::Conn::new(mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false))
            .await
            .unwrap();
    use mysql_async::prelude::Queryable;
    ok.query_drop("INSERT INTO t (client, seq) VALUES (1, 1)")
        .await
        .unwrap();
    assert!(
        ok.reset().await.is_ok(),
        "COM_RESET_CONNECTION through mysql_async"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM t").await, 1);
}

/// One statement's OK as a client that tracks session state reads it: the
/// status flags a driver relies on and the session-state entries, sorted.
async fn ok_of(s: &mut TcpStream, sql: &str) -> (u16, Vec<String>) {
    use mysql_common::constants::StatusFlags;
    use mysql_common::packets::session_state_change::SessionStateChange;
    use mysql_common::packets::{CommonOkPacket, OkPacketDeserializer};
    let mut q = vec![0x03];
    q.extend_from_slice(sql.as_bytes());
    write_packet(s, 0, &q).await;
    let (_, p) = read_packet(s).await.unwrap();
    assert_eq!(
        p[0],
        0x00,
        "{sql}: not an OK: {:?}",
        String::from_utf8_lossy(&p)
    );
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SESSION_TRACK;
    let ok = OkPacketDeserializer::<CommonOkPacket>::deserialize(caps, &mut ParseBuf(&p))
        .unwrap()
        .into_inner();
    let relied_on = StatusFlags::SERVER_STATUS_AUTOCOMMIT
        | StatusFlags::SERVER_STATUS_IN_TRANS
        | StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES
        | StatusFlags::SERVER_SESSION_STATE_CHANGED;
    let mut state: Vec<String> = ok
        .session_state_info()
        .unwrap()
        .iter()
        .map(|i| match i.decode().unwrap() {
            SessionStateChange::SystemVariables(vars) => vars
                .iter()
                .map(|v| format!("{}={}", v.name_str(), v.value_str()))
                .collect::<Vec<_>>()
                .join(","),
            SessionStateChange::Schema(s) => format!("schema={}", s.as_str()),
            other => format!("{other:?}"),
        })
        .collect();
    state.sort();
    ((ok.status_flags() & relied_on).bits(), state)
}

/// A client that asks for CLIENT_SESSION_TRACK reads the same status flags
/// and session-state changes from sluice as from MariaDB, statement by
/// statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tracking_and_status_flags_match_mariadbs() {
    let db = mariadb_with_table().await;
    let (s, _dir) = direct_sluice_with(&db, |raw| {
        enable_mysql_front(raw, PASSWORD, "5s");
    })
    .await;
    let front = s.running.as_ref().unwrap().mysql_addr.unwrap().port();
    let script = [
        "USE app",
        "SET autocommit = 0",
        "INSERT INTO t (client, seq) VALUES (1, 1)",
        "COMMIT",
        "SET autocommit = 1",
        "SET NAMES gbk",
        "SET time_zone = '+01:00'",
        "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
        "BEGIN",
        "INSERT INTO t (client, seq) VALUES (1, 2)",
        "ROLLBACK",
        "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'",
    ];
    let track = CapabilityFlags::CLIENT_SESSION_TRACK;
    let mut straight = login_as(db.port(), sluice::testkit::APP_PASSWORD, track).await;
    let mut through = login_as(front, PASSWORD, track).await;
    let mut differ = Vec::new();
    let mut tracked = 0;
    for sql in script {
        let (a, b) = (
            ok_of(&mut straight, sql).await,
            ok_of(&mut through, sql).await,
        );
        tracked += a.1.len();
        if a != b {
            differ.push(format!("{sql}: MariaDB {a:?}, sluice {b:?}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(
        tracked >= 5,
        "MariaDB reported no session state: the test reads nothing"
    );
}
