//! Issue 13, item 6 ("honest operations"), the parts inside the server: a failed last
//! statement leaves no stray ROLLBACK behind (PostgreSQL's "there is no transaction in
//! progress"); a database error reads as the database's message; `/readyz` fails when
//! the database answers errors, and when the webhook worker's passes keep failing.
//! (The CLI parts, the log and `/metrics` are tested on the real binary in
//! crates/frontdesk/tests/cli.rs.)

use std::time::Duration;

use frontdesk_pg::{Principal, RequestContext, Tx};
use frontdesk_server::{WorkerConfig, WorkerHealth};
use frontdesk_test::{AppOptions, Reply, cluster, spawn_app_on_with, wait::wait_until};

fn operator() -> RequestContext {
    RequestContext {
        tenant: None,
        tenant_version: None,
        principal: Principal::Operator,
        read_only: false,
    }
}

/// A statement marked `last` carries the COMMIT; when it fails, PostgreSQL ends the
/// transaction with that COMMIT, and nothing more may be sent: a ROLLBACK then draws a
/// WARNING in PostgreSQL's log (and, through the driver, in the server's).
#[tokio::test]
async fn a_failed_last_statement_sends_no_rollback_after_its_commit() {
    let db = cluster().database(true).await;
    // One connection per pool: the next checkout gets the same connection, once whatever
    // the failed transaction left to do on it is done.
    let pool = db.db(1);
    for (sql, sqlstate) in [
        ("select 1 / 0", "22012"),
        ("select * from app.no_such_table", "42P01"),
    ] {
        let failed = Tx::run(&pool, &operator(), async |tx| {
            tx.last().query(sql, &[]).await.map(drop)
        })
        .await
        .unwrap_err();
        assert_eq!(failed.code(), Some(sqlstate), "{failed}");
        // Failing before the last statement: rolled back, as it must be.
        let rolled_back = Tx::run(&pool, &operator(), async |tx| {
            tx.query("select 1", &[]).await?;
            tx.query(sql, &[]).await.map(drop)
        })
        .await;
        assert!(rolled_back.is_err());
    }
    let conn = pool.operator().get().await.unwrap();
    let pid: i32 = conn
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // And the connection is back outside any transaction.
    let state: String = db
        .admin()
        .await
        .query_one("select state from pg_stat_activity where pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        state, "idle",
        "the connection came back inside a transaction"
    );
    drop(conn);
    let log =
        std::fs::read_to_string(cluster().cluster.socket_dir().join("postgresql.log")).unwrap();
    let stray: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("[{pid}] WARNING")))
        .collect();
    assert!(stray.is_empty(), "{stray:#?}");
}

/// The database's answer travels with the error: severity, SQLSTATE and message (the
/// driver alone says "db error"), so the worker's and the sweeper's logs say what failed.
#[tokio::test]
async fn a_database_error_reads_as_what_the_database_said() {
    let db = cluster().database(true).await;
    let pool = db.db(1);
    let failed = Tx::run(&pool, &operator(), async |tx| {
        tx.last().query("select 1 / 0", &[]).await.map(drop)
    })
    .await
    .unwrap_err();
    let text = failed.to_string();
    assert!(text.contains("division by zero"), "{text}");
    assert!(text.contains("22012"), "{text}");
    let core = frontdesk_core::CoreError::from(failed);
    assert!(core.to_string().contains("division by zero"), "{core}");
}

async fn readyz(app: &frontdesk_test::TestApp) -> Reply {
    Reply::of(app.http.get(format!("{}/readyz", app.base))).await
}

/// The database answers, with errors, for the operator's login (here: the context
/// function raises): `/readyz` says so at once, naming the SQLSTATE, and names the webhook
/// worker once its passes keep failing; ready again when the database is.
#[tokio::test]
async fn readyz_fails_while_the_database_answers_errors() {
    let db = cluster().database(true).await;
    let worker = frontdesk_server::Worker::new(
        db.db(2),
        WorkerConfig {
            idle_poll: Duration::from_millis(20),
            allow_private: true,
            ..Default::default()
        },
    )
    .unwrap();
    let heartbeat = worker.heartbeat();
    let app = spawn_app_on_with(
        &db,
        AppOptions {
            worker: Some(WorkerHealth {
                heartbeat: heartbeat.clone(),
                stale_after: Duration::from_secs(3600),
            }),
            ..Default::default()
        },
    )
    .await;
    let task = worker.spawn();
    let ready = readyz(&app).await;
    assert_eq!(ready.status, 200, "{}", ready.text);

    let admin = db.admin().await;
    let definition: String = admin
        .query_one(
            "select pg_get_functiondef('app.assert_principal()'::regprocedure)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(
            "create or replace function app.assert_principal() returns void
                 language plpgsql as $$
             begin
                 if current_user = 'frontdesk_operator' then
                     raise exception 'out of order' using errcode = 'XX001';
                 end if;
             end $$",
        )
        .await
        .unwrap();
    let broken = readyz(&app).await;
    assert_eq!(broken.status, 503, "{}", broken.text);
    let detail = broken.body["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("frontdesk_operator"), "{detail}");
    assert!(detail.contains("XX001"), "{detail}");
    assert!(
        !detail.contains("out of order"),
        "the database's text is for the log: {detail}"
    );
    // The worker's passes fail too: after a few, readyz names the worker.
    wait_until(
        "readyz to report the worker's failing passes",
        Duration::from_secs(60),
        || {
            let app = &app;
            async move {
                let r = readyz(app).await;
                let detail = r.body["detail"].as_str().unwrap_or("").to_owned();
                if r.status == 503 && detail.contains("passes failed") {
                    Ok(())
                } else {
                    Err(format!("{}: {}", r.status, r.text))
                }
            }
        },
    )
    .await;

    admin.batch_execute(&definition).await.unwrap();
    wait_until("readyz to be ready again", Duration::from_secs(60), || {
        let app = &app;
        async move {
            let r = readyz(app).await;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{}: {}", r.status, r.text))
            }
        }
    })
    .await;
    task.abort();
}
