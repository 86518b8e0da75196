//! The MySQL front with `mysql_async`: the same driver code as against
//! MariaDB itself, with only the URL changed. A prepared INSERT (its affected
//! rows and insert id are MariaDB's own while sluice is direct), a
//! write-only transaction (queued as one unit if MariaDB stalls), and a read.
//!
//! ```sh
//! ORDERS_URL=mysql://app:app-secret@127.0.0.1:3307/app cargo run --example mysql_async_client
//! ```
//!
//! It writes to table `orders` (created by docker/mariadb/init.sql or by the
//! orders_sqlx example).

use mysql_async::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("ORDERS_URL")
        .unwrap_or_else(|_| "mysql://app:app-secret@127.0.0.1:3307/app".into());
    let pool = mysql_async::Pool::new(mysql_async::Opts::from_url(&url)?);
    let mut conn = pool.get_conn().await?;

    conn.exec_drop(
        "INSERT INTO orders (customer, total, created_at) VALUES (?, ?, NOW(6))",
        (42, "9.99"),
    )
    .await?;
    println!(
        "prepared INSERT: {} row(s), insert id {:?}, info {:?}",
        conn.affected_rows(),
        conn.last_insert_id(),
        conn.info()
    );

    let mut tx = conn.start_transaction(Default::default()).await?;
    for (customer, total) in [(43, "5.00"), (44, "7.50")] {
        tx.exec_drop(
            "INSERT INTO orders (customer, total, created_at) VALUES (?, ?, NOW(6))",
            (customer, total),
        )
        .await?;
    }
    tx.commit().await?;
    println!("transaction of two INSERTs committed as one write");

    let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM orders").await?;
    println!("orders now: {}", n.unwrap_or(0));
    drop(conn);
    pool.disconnect().await?;
    Ok(())
}
