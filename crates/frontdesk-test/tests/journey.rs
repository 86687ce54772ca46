//! The journey (`frontdesk_test::journey`) on one server, and on two servers sharing one
//! database. The same journey runs through PgBouncer (tests/pgbouncer.rs) and on Citus.

use frontdesk_test::{journey, spawn_app, spawn_app_on};

#[tokio::test]
async fn the_journey_on_one_server() {
    let app = spawn_app().await;
    let report = journey::run(&[&app]).await;
    assert_eq!(report.messages, journey::MESSAGES);
    assert_eq!(report.webhooks, journey::MESSAGES);
    eprintln!("{report}");
}

#[tokio::test]
async fn the_journey_on_two_servers_of_one_database() {
    let one = spawn_app().await;
    let two = spawn_app_on(&one.db).await;
    let report = journey::run(&[&one, &two]).await;
    assert_eq!(report.messages, journey::MESSAGES);
    assert!(
        report.requests_per_server.iter().all(|n| *n > 0),
        "both servers served: {:?}",
        report.requests_per_server
    );
    eprintln!("{report}");
}
