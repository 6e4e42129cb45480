//! A small bounded connection pool of our own (a mutex, a condition variable, at most `max`
//! clients made on demand): the store needs nothing more than "borrow a client for one short
//! transaction", and this avoids r2d2's extra threads and crates.
//!
//! A client that comes back closed (the server went away) is dropped, and the next borrower
//! connects afresh. `postgres::Client` owns a small tokio runtime, which may not be dropped
//! on an async thread: the pool drops its clients on a thread of its own.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use crate::StoreError;

/// How long a borrower waits for a free client before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Slots {
    idle: Vec<Client>,
    /// Clients in existence (idle or borrowed).
    open: usize,
}

/// The pool.
pub(super) struct Pool {
    config: Config,
    max: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// A borrowed client, returned to the pool on drop.
pub(super) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a borrowed client")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a borrowed client")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut s = self.pool.lock();
        if client.is_closed() {
            s.open -= 1;
            drop(s);
            drop_off_thread(vec![client]);
        } else {
            s.idle.push(client);
        }
        self.pool.freed.notify_one();
    }
}

fn drop_off_thread(clients: Vec<Client>) {
    if clients.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("store-pg-close".into())
        .spawn(move || drop(clients))
        .map(std::thread::JoinHandle::join);
}

impl Pool {
    pub(super) fn new(config: Config, max: usize) -> Self {
        Self {
            config,
            max: max.max(1),
            slots: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    /// The connection settings (the LISTEN connection is made from them, outside the pool).
    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Borrows an idle client, or connects a new one while fewer than `max` exist, or waits.
    pub(super) fn get(&self) -> Result<Conn<'_>, StoreError> {
        let deadline = Instant::now() + WAIT;
        let mut s = self.lock();
        loop {
            if let Some(client) = s.idle.pop() {
                return Ok(Conn {
                    pool: self,
                    client: Some(client),
                });
            }
            if s.open < self.max {
                s.open += 1;
                drop(s);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(Conn {
                        pool: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(StoreError::Db(format!("cannot connect to PostgreSQL: {e}")))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Db(format!(
                    "no free PostgreSQL connection within {WAIT:?} (pool of {})",
                    self.max
                )));
            }
            s = self
                .freed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        drop_off_thread(idle);
    }
}
