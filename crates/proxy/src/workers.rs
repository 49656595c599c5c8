//! Where service connections are served: on the caller's runtime, or on `N` worker threads that each run a
//! current-thread runtime and accept on their own `SO_REUSEPORT` socket.
//!
//! Worker threads share nothing on the hot path but the routing table (read through `arc-swap`): each has its
//! own listener sockets (the kernel spreads new connections), its own upstream connections and its own
//! measurement shards, so a request never crosses threads and never waits for a lock another worker holds.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

use crate::worker;

/// Pending connections the kernel queues per listener socket before refusing more.
const BACKLOG: i32 = 1024;

/// One listening socket per worker on `addr`; several share the port through `SO_REUSEPORT`.
///
/// A single socket does not set `SO_REUSEPORT`, so a second proxy started by mistake on the same
/// address fails to bind instead of silently taking half the connections.
pub(crate) fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let shared = workers > 1;
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            if shared {
                socket.set_reuse_port(true)?;
            }
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(socket.into())
        })
        .collect()
}

/// The runtimes that serve service listeners.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    /// Raised to let worker threads return once their listeners have drained.
    exit: Option<watch::Sender<bool>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Serve on the runtime of the caller (one shard; tasks may run on any of its threads).
    pub(crate) fn on_current_runtime() -> Self {
        Self {
            handles: vec![Handle::current()],
            exit: None,
            threads: Vec::new(),
        }
    }

    /// Starts `count` worker threads, each with its own current-thread runtime.
    pub(crate) fn spawn(count: NonZeroUsize) -> io::Result<Self> {
        let (exit, exiting) = watch::channel(false);
        let mut workers = Self {
            handles: Vec::new(),
            exit: Some(exit),
            threads: Vec::new(),
        };
        for index in 0..count.get() {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            workers.handles.push(runtime.handle().clone());
            let mut exiting = exiting.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-worker-{index}"))
                .spawn(move || {
                    worker::set_current(index);
                    runtime.block_on(async move {
                        let _ = exiting.wait_for(|exit| *exit).await;
                    });
                })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// One runtime handle per worker, in worker order.
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Number of measurement shards and connection pools needed: one per worker.
    pub(crate) fn count(&self) -> usize {
        self.handles.len()
    }
    /// Lets the worker threads return and waits for them; call once their listeners have drained.
    pub(crate) fn stop(mut self) {
        self.signal_exit();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }

    fn signal_exit(&mut self) {
        if let Some(exit) = self.exit.take() {
            exit.send_replace(true);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Dropped without `stop` (a handle dropped without shutdown): the threads end and drop their tasks.
        self.signal_exit();
    }
}
