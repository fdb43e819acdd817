//! How Rust work reaches an asyncio event loop, and back.
//!
//! Rust runs on a Tokio runtime of its own threads, which never wait for
//! the GIL. What must happen in Python — settling an `asyncio.Future` with
//! a result, or starting a handler's coroutine — is queued as a [`Job`] on
//! the event loop's [`LoopBridge`], which wakes the loop through a socket
//! pair the loop watches (`loop.add_reader`); the loop's thread then runs
//! every queued job under the GIL it already holds (`drain`). One byte
//! wakes the loop however many jobs are queued, and the Tokio threads never
//! block on Python: a slow or CPU-bound Python handler cannot stall the
//! transport.
//!
//! (pyo3-async-runtimes does the same with two task spawns and a
//! `spawn_blocking` hop per call, which wakes one more thread per call.)

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::IntoPyObjectExt as _;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::error::NativeError;

/// Work for the event loop's thread, run with the GIL held.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// The Tokio runtime every agent and peer of the process runs on.
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // One worker by default: a Python process is bound by its event
        // loop's thread, and each extra worker adds sleep/wake cycles per
        // ask (BENCHMARKS.md, "Python": 53 µs instead of 72 µs p50 pinned,
        // the same throughput unpinned). `TACIT_WORKER_THREADS` overrides.
        let threads = std::env::var("TACIT_WORKER_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tacit-worker")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}

/// The queue of one event loop.
pub(crate) struct BridgeInner {
    queue: Mutex<Vec<Job>>,
    /// Whether a wake-up byte is on its way (so one wakes many jobs).
    signalled: AtomicBool,
    writer: UnixStream,
    reader: UnixStream,
    /// The asyncio event loop (for `create_future`).
    pub(crate) event_loop: Py<PyAny>,
}

impl BridgeInner {
    /// Queues `job` for the loop's thread and wakes it.
    pub(crate) fn push(&self, job: Job) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(job);
        if !self.signalled.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a byte is already there to wake it.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

/// The bridge of one asyncio event loop: `loop.add_reader(bridge.fileno(), bridge.drain)`.
#[pyclass(frozen, module = "tacit._native")]
pub(crate) struct LoopBridge {
    pub(crate) inner: Arc<BridgeInner>,
}

#[pymethods]
impl LoopBridge {
    #[new]
    fn new(event_loop: Py<PyAny>) -> PyResult<Self> {
        let (writer, reader) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        reader.set_nonblocking(true)?;
        Ok(Self {
            inner: Arc::new(BridgeInner {
                queue: Mutex::new(Vec::new()),
                signalled: AtomicBool::new(false),
                writer,
                reader,
                event_loop,
            }),
        })
    }

    /// The descriptor the loop watches.
    fn fileno(&self) -> i32 {
        self.inner.reader.as_raw_fd()
    }

    /// Runs every queued job (the loop calls it when the descriptor is readable).
    fn drain(&self, py: Python<'_>) {
        let mut sink = [0u8; 64];
        while matches!((&self.inner.reader).read(&mut sink), Ok(n) if n > 0) {}
        // Cleared before the queue is taken: a job pushed after this point
        // sends a new byte, one pushed before it is in the queue taken now.
        self.inner.signalled.store(false, Ordering::Release);
        let jobs = std::mem::take(&mut *self.inner.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for job in jobs {
            job(py);
        }
    }
}

/// Cancels the Rust side of a call when its asyncio future is done (a
/// no-op after the Rust side finished): asyncio cancellation drops the
/// Rust future, and a dropped ask sends `CANCEL` on the wire.
#[pyclass(frozen, module = "tacit._native")]
struct Aborter(AbortHandle);

#[pymethods]
impl Aborter {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        self.0.abort();
    }
}

/// Runs `work` on the runtime and returns an `asyncio.Future` of its result.
pub(crate) fn call<F, T>(py: Python<'_>, bridge: &Arc<BridgeInner>, work: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = Result<T, NativeError>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let future = bridge.event_loop.call_method0(py, pyo3::intern!(py, "create_future"))?;
    let settled = future.clone_ref(py);
    let queue = bridge.clone();
    let task = runtime().spawn(async move {
        let result = work.await;
        queue.push(Box::new(move |py| settle(py, &settled, result)));
    });
    future.call_method1(py, pyo3::intern!(py, "add_done_callback"), (Aborter(task.abort_handle()),))?;
    Ok(future)
}

fn settle<T>(py: Python<'_>, future: &Py<PyAny>, result: Result<T, NativeError>)
where
    T: for<'py> IntoPyObject<'py>,
{
    let future = future.bind(py);
    if future.call_method0(pyo3::intern!(py, "done")).and_then(|done| done.is_truthy()).unwrap_or(true) {
        return;
    }
    let outcome = match result {
        Ok(value) => match value.into_py_any(py) {
            Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
            Err(error) => future.call_method1(pyo3::intern!(py, "set_exception"), (error.value(py),)),
        },
        Err(error) => future.call_method1(pyo3::intern!(py, "set_exception"), (error.into_pyerr(py).value(py),)),
    };
    if let Err(error) = outcome {
        error.write_unraisable(py, Some(future));
    }
}

/// Bytes that become a Python `bytes` (on the loop's thread, when the
/// result is settled).
#[derive(Debug)]
pub(crate) struct Payload(pub(crate) bytes::Bytes);

impl<'py> IntoPyObject<'py> for Payload {
    type Target = pyo3::types::PyBytes;
    type Output = Bound<'py, pyo3::types::PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(pyo3::types::PyBytes::new(py, &self.0))
    }
}
